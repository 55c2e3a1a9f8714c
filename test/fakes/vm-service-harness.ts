// A VmService over the fakes (driver, privileged ops, process runner, clock) and a real in-memory store, with a
// kernel, an image and banger's ssh key in a temporary directory. Call `dispose` afterwards.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { VmService } from '../../src/daemon/services/vm-service.ts';
import { BangerError } from '../../src/protocol/errors.ts';
import type { CallContext, ProgressEvent } from '../../src/protocol/jsonrpc.ts';
import type { ImageInfo, KernelInfo } from '../../src/protocol/methods.ts';
import { Store } from '../../src/store/store.ts';
import { loadConfig, type BangerConfig } from '../../src/system/config.ts';
import type { Clock } from '../../src/system/clock.ts';
import { FakeClock } from './fake-clock.ts';
import { FakePrivilegedOps } from './fake-privileged-ops.ts';
import { FakeProcessRunner } from './fake-process-runner.ts';
import { FakeVmmDriver } from './fake-vmm-driver.ts';
import { FakeGuestAgents } from './fake-guest-agents.ts';

export interface VmServiceHarness {
  dir: string;
  /** The owner's home directory (file_sync reads from here). */
  home: string;
  vmsDir: string;
  store: Store;
  driver: FakeVmmDriver;
  agents: FakeGuestAgents;
  ops: FakePrivilegedOps;
  runner: FakeProcessRunner;
  config: BangerConfig;
  logs: string[];
  kernel: KernelInfo;
  image: ImageInfo;
  service: VmService;
  dispose(): void;
}

/** What the harness's VMs carry as their guest agent binary. */
export const FAKE_AGENT = Buffer.from('\x7fELF fake agent');

/** The base initrd the harness's kernel has, as bytes. */
export const BASE_INITRD = Buffer.alloc(1024, 0x42);

/** `configText` is config.toml's text; `configure` may change the loaded config further. */
export function vmServiceHarness(o: { configText?: string; configure?: (config: BangerConfig) => void; clock?: Clock } = {}): VmServiceHarness {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-harness-'));
  const home = path.join(dir, 'home');
  fs.mkdirSync(home);
  const store = new Store(':memory:');
  const driver = new FakeVmmDriver();
  const agents = new FakeGuestAgents();
  const ops = new FakePrivilegedOps();
  const runner = new FakeProcessRunner();
  const configFile = path.join(dir, 'config.toml');
  if (o.configText !== undefined) fs.writeFileSync(configFile, o.configText);
  const config = loadConfig(configFile, {});
  o.configure?.(config);
  fs.mkdirSync(path.join(dir, 'kernels'));
  const kernel: KernelInfo = {
    id: 'host-6.1.0-test', version: '6.1.0-test', kernelPath: path.join(dir, 'kernels', 'vmlinuz'),
    initrdPath: path.join(dir, 'kernels', 'initrd.img'), source: 'test', createdAt: '2025-01-01T00:00:00.000Z', format: 'bzimage',
  };
  fs.writeFileSync(kernel.kernelPath, 'kernel');
  fs.writeFileSync(kernel.initrdPath, BASE_INITRD);
  fs.mkdirSync(path.join(dir, 'images'));
  const image: ImageInfo = {
    name: 'debian-bookworm', path: path.join(dir, 'images', 'rootfs.ext4'), sizeBytes: 6, source: 'test', createdAt: kernel.createdAt, boot: 'systemd', hasSshd: true,
    ref: null, digest: null, run: null, layers: [], kernelRef: null,
  };
  fs.writeFileSync(image.path, 'rootfs');
  fs.mkdirSync(path.join(dir, 'ssh'));
  const sshKey = path.join(dir, 'ssh', 'id_ed25519');
  fs.writeFileSync(sshKey, 'private');
  fs.writeFileSync(`${sshKey}.pub`, 'ssh-ed25519 AAAAbanger banger\n');
  const logs: string[] = [];
  const vmsDir = path.join(dir, 'vms');
  const service = new VmService({
    store, driver, ops, runner, config, clock: o.clock ?? new FakeClock(), vmsDir, sshKey, home, log: (m) => logs.push(m), agents, agentBinary: () => FAKE_AGENT,
    kernels: {
      ensureDefault: async () => {
        store.upsertKernel(kernel);
        return kernel;
      },
      ensure: async (name: string) => {
        const named = store.getKernel(name);
        if (!named) throw new BangerError('KERNEL_NOT_FOUND', `no kernel named ${name}`);
        return named;
      },
    },
    images: {
      ensure: async (name: string) => {
        if (name !== image.name) throw new BangerError('IMAGE_NOT_FOUND', `no image named ${name}`);
        return image;
      },
    },
  });
  return {
    dir, home, vmsDir, store, driver, agents, ops, runner, config, logs, kernel, image, service,
    dispose: () => {
      store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function callContext(): { ctx: CallContext; events: ProgressEvent[]; controller: AbortController } {
  const events: ProgressEvent[] = [];
  const controller = new AbortController();
  return { ctx: { signal: controller.signal, progress: (e) => events.push(e) }, events, controller };
}
