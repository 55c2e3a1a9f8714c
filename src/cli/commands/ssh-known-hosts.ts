// banger ssh-known-hosts HOST (hidden): the KnownHostsCommand of banger's `Host *.vm` (see ssh-config.ts). For
// HOST NAME.vm it prints the host key banger pinned for the running VM NAME as known_hosts lines for HOST, so ssh
// checks the guest's key strictly and nothing is written to ~/.ssh/known_hosts. For a name that is no running VM
// it prints nothing and exits 0: ssh then fails its host key check as it would for any unknown host.
import fs from 'node:fs';
import { BangerError } from '../../protocol/errors.ts';
import type { SshTarget } from '../../protocol/methods.ts';
import type { CliContext } from '../context.ts';

/** The VM name in ssh's %H: NAME.vm, or [NAME.vm]:PORT for another port; null for a host outside .vm. */
export function vmNameOf(host: string): string | null {
  const bare = /^\[(.+)\]:\d+$/.exec(host)?.[1] ?? host;
  const name = /^(.+)\.vm\.?$/i.exec(bare)?.[1]?.toLowerCase();
  return name === undefined || name.includes('.') ? null : name;
}

/** The keys pinned under `alias` in a VM's known_hosts, as lines for `host`. */
export function knownHostsLines(text: string, alias: string, host: string): string[] {
  const lines: string[] = [];
  for (const raw of text.split('\n')) {
    const [hosts, type, key] = raw.trim().split(/\s+/);
    // Comments and marker lines (@revoked, @cert-authority) are none of banger's.
    if (!hosts || !type || !key || hosts.startsWith('#') || hosts.startsWith('@')) continue;
    if (hosts.split(',').includes(alias)) lines.push(`${host} ${type} ${key}`);
  }
  return lines;
}

export async function sshKnownHosts(ctx: CliContext, host: string): Promise<number> {
  const name = vmNameOf(host);
  if (name === null) return 0;
  let target: SshTarget;
  try {
    target = await (await ctx.client()).sshTarget(name);
  } catch (err) {
    // No such VM, or it is not running: ssh reports the missing key. bangerd being unreachable is an error.
    if (err instanceof BangerError && (err.code === 'VM_NOT_FOUND' || err.code === 'VM_BAD_STATE')) return 0;
    throw err;
  }
  // A ref also matches an id prefix; NAME.vm means the VM called NAME only.
  if (target.name !== name) return 0;
  let text: string;
  try {
    text = fs.readFileSync(target.knownHostsPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    ctx.output.err(`banger: VM ${name} has no pinned host key (${target.knownHostsPath} is missing), so ssh will refuse it; a VM is given its key when it is created: banger vm delete ${name}, then create it again`);
    return 0;
  }
  const lines = knownHostsLines(text, target.hostKeyAlias, host);
  if (lines.length > 0) ctx.output.out(lines.join('\n'));
  return 0;
}
