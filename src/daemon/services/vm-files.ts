// What a VM needs on disk before it boots: its host key (pinned in known_hosts), disks, and its own initrd.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ImageBoot, KernelInfo, VmInfo } from '../../protocol/methods.ts';
import { hostNameservers } from '../../system/host-dns.ts';
import type { ProcessRunner } from '../../system/process.ts';
import { runChecked } from '../../system/process.ts';
import { buildVmConfigArchive } from '../../kernel/initrd.ts';
import type { VmFiles, VmmDriver } from '../../vmm/driver.ts';
import { hostKeyAlias } from './guest-ssh.ts';

export interface WorkDiskSeed {
  dir: string;
  remove(): void;
}

export interface PrepareVmFilesOptions {
  vm: VmInfo;
  files: VmFiles;
  kernel: KernelInfo;
  baseImage: string;
  gateway: string;
  /** banger's private key; its .pub goes into the guest's authorized_keys. */
  sshKey: string;
  runner: ProcessRunner;
  driver: VmmDriver;
  signal: AbortSignal;
  /** Builds a directory the work disk (the guest's /root) is then made with; it is removed afterwards. */
  seedWorkDisk?: () => Promise<WorkDiskSeed>;
  /** The guest agent binary the initrd installs. */
  agent: Buffer;
  /** What PID 1 is in the image: its systemd, or banger's agent. */
  boot: ImageBoot;
}

export type InitrdOptions = Pick<PrepareVmFilesOptions, 'vm' | 'files' | 'kernel' | 'gateway' | 'sshKey' | 'agent' | 'boot'>;

/**
 * The VM's own initrd: the kernel's base initrd plus this VM's configuration and banger's current guest agent.
 * Written at create and again at every later start, so a VM restarted after an upgrade runs the new agent.
 */
export function writeVmInitrd(o: InitrdOptions): void {
  const { vm, files } = o;
  const hostKey = path.join(files.dir, 'ssh_host_ed25519_key');
  const configArchive = buildVmConfigArchive({
    hostname: vm.name,
    ip: vm.ip,
    prefix: 24,
    gateway: o.gateway,
    // Stable across boots, as systemd expects, without another file to keep.
    machineId: crypto.createHash('sha256').update(`banger-machine-id:${vm.id}`).digest('hex').slice(0, 32),
    authorizedKeys: fs.readFileSync(`${o.sshKey}.pub`, 'utf8'),
    hostKey: fs.readFileSync(hostKey, 'utf8'),
    hostKeyPub: fs.readFileSync(`${hostKey}.pub`, 'utf8'),
    agent: o.agent,
    boot: o.boot,
    dns: o.boot === 'agent' ? hostNameservers() : [],
  });
  fs.writeFileSync(files.initrd, Buffer.concat([fs.readFileSync(o.kernel.initrdPath), configArchive]), { mode: 0o600 });
}

export async function prepareVmFiles(o: PrepareVmFilesOptions): Promise<void> {
  const { vm, files } = o;
  fs.mkdirSync(files.dir, { recursive: true, mode: 0o700 });
  const hostKey = path.join(files.dir, 'ssh_host_ed25519_key');
  await runChecked(o.runner, 'ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `banger-${vm.id}`, '-f', hostKey], { signal: o.signal });
  const hostKeyPub = fs.readFileSync(`${hostKey}.pub`, 'utf8');
  // Host key made here and pinned, so even the first connection is verified.
  fs.writeFileSync(path.join(files.dir, 'known_hosts'), `${hostKeyAlias(vm)} ${hostKeyPub.split(' ').slice(0, 2).join(' ')}\n`);
  const seed = o.seedWorkDisk ? await o.seedWorkDisk() : null;
  try {
    await o.driver.prepareDisks(files, { baseImage: o.baseImage, workDiskGib: vm.diskGib, ...(seed ? { workDiskSeed: seed.dir } : {}), signal: o.signal });
  } finally {
    seed?.remove();
  }
  writeVmInitrd(o);
}
