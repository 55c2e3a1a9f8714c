// Whether a tap is this helper's to remove: made for its owner, on its bridge or none, and not attached to a
// running VM. Another user (or program) may share the namespace; its devices are not banger's.
import { BangerError } from '../protocol/errors.ts';
import type { ProcessRunner } from '../system/process.ts';
import { runChecked } from '../system/process.ts';
import { findTapUsers } from '../system/tap-users.ts';

export interface TapScope {
  runner: ProcessRunner;
  ownerUid: number;
  bridge: string;
  /** Where the process table is read (/proc). */
  procDir: string;
}

/** `ip` inside the namespace when one is given. */
export function ipArgs(netns: string | null, args: string[]): string[] {
  return netns ? ['-n', netns, ...args] : args;
}

/**
 * Refuses to remove `tap` unless it is a tap this helper may remove: a tun/tap device in tap mode, made for
 * this helper's owner, and on no bridge or on this helper's own. Two owners may share a namespace, and a
 * device of another kind may carry a tap-like name; neither is this helper's to delete.
 */
export async function refuseIfNotOwnersTap(t: TapScope, netns: string | null, tap: string): Promise<void> {
  const out = await runChecked(t.runner, 'ip', ipArgs(netns, ['-j', '-d', 'link', 'show', 'dev', tap]));
  // What `ip -j -d link show` prints for `ip tuntap add dev T mode tap user U group G`, enslaved to bridge B
  // (iproute2 6.1): [{"ifname":"T","master":"B","linkinfo":{"info_kind":"tun","info_data":{"type":"tap",
  // "user":U,"group":G,...},"info_slave_kind":"bridge",...},...}]. A tun-mode device has "type":"tun"; a
  // tap made without `user` has no "user" field; a device on no bridge has no "master". `user` is a name, not a
  // number, when the uid has one in the passwd database ("root" for 0).
  const [link] = JSON.parse(out.stdout) as Array<{
    master?: string;
    linkinfo?: { info_kind?: string; info_data?: { type?: string; user?: number | string } };
  }>;
  const where = netns ? ` in netns ${netns}` : '';
  const kind = link?.linkinfo?.info_kind === 'tun' ? link.linkinfo.info_data?.type : link?.linkinfo?.info_kind;
  if (kind !== 'tap') {
    throw new BangerError('HELPER_REFUSED', `bangerd-root refused: ${tap}${where} is ${kind ? `a ${kind} device` : 'a plain device'}, not a tap; banger made no such device`, {
      hint: `banger removes only its own taps; if ${tap} is a leftover of yours, remove it yourself (ip${netns ? ` -n ${netns}` : ''} link del dev ${tap}) and try again`,
    });
  }
  const printed = link?.linkinfo?.info_data?.user;
  const user = typeof printed === 'string' ? await tapOwnerUid(t, netns, tap) : printed;
  if (user !== t.ownerUid) {
    throw new BangerError('HELPER_REFUSED', `bangerd-root refused: tap ${tap}${where} belongs to ${user === undefined ? 'no user' : `uid ${user}`}, not to uid ${t.ownerUid} that this bangerd-root serves`, {
      hint: 'another user (or another program) has a tap of that name in the same network namespace; it is theirs to remove. To keep banger owners apart, give each its own network.netns or network.bridge in config.toml',
    });
  }
  if (link?.master !== undefined && link.master !== t.bridge) {
    throw new BangerError('HELPER_REFUSED', `bangerd-root refused: tap ${tap}${where} is on bridge ${link.master}, not on ${t.bridge} that this bangerd-root manages`, {
      hint: `another banger (or another program) with a different network.bridge uses ${tap}; stop its VM there, or remove the tap yourself if it is a leftover (ip${netns ? ` -n ${netns}` : ''} link del dev ${tap})`,
    });
  }
}

/**
 * The uid that owns a tap, as the kernel keeps it (/sys/class/net/TAP/owner; -1 for none), read inside the tap's
 * namespace (`ip netns exec` mounts that namespace's sysfs). For when `ip` printed a user name.
 */
async function tapOwnerUid(t: TapScope, netns: string | null, tap: string): Promise<number | undefined> {
  const file = `/sys/class/net/${tap}/owner`;
  const out = await runChecked(t.runner, netns ? 'ip' : 'cat', netns ? ['netns', 'exec', netns, 'cat', file] : [file]);
  const uid = Number(out.stdout.trim());
  return Number.isInteger(uid) && uid >= 0 ? uid : undefined;
}

/** Refuses to remove a tap a live process (a VM's QEMU) has attached: the VM would lose its network. */
export function refuseIfTapInUse(t: TapScope, tap: string): void {
  const users = findTapUsers(tap, t.procDir);
  if (users.length === 0) return;
  throw new BangerError('HELPER_REFUSED', `bangerd-root refused: tap ${tap} is attached to running process ${users.join(', ')}; deleting it would cut a running VM off the network`, {
    hint: 'stop its VM first (banger vm stop)',
  });
}
