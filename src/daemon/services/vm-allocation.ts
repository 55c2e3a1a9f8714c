// Names, addresses and device names for new VMs.
import crypto from 'node:crypto';
import { BangerError } from '../../protocol/errors.ts';
import type { Store } from '../../store/store.ts';

const ADJECTIVES = ['brisk', 'calm', 'eager', 'fuzzy', 'gentle', 'jolly', 'keen', 'lucky', 'mellow', 'nimble', 'plucky', 'quiet', 'rapid', 'sunny', 'tidy', 'witty'];
const NOUNS = ['badger', 'crane', 'dingo', 'ferret', 'gecko', 'heron', 'ibis', 'koala', 'lemur', 'marten', 'newt', 'otter', 'panda', 'quail', 'raven', 'stoat'];

/** The first three octets of a /24 subnet and its gateway (the bridge's address). */
export function subnetOf(subnet: string): { prefix: string; gateway: string } {
  const prefix = subnet.split('/')[0]!.split('.').slice(0, 3).join('.');
  return { prefix, gateway: `${prefix}.1` };
}

/** The lowest free address in the subnet, so a VM's address depends only on which others exist. */
export function allocateIp(store: Store, subnet: string): string {
  const used = store.usedIps();
  const { prefix } = subnetOf(subnet);
  for (let host = 2; host < 255; host++) {
    const ip = `${prefix}.${host}`;
    if (!used.has(ip)) return ip;
  }
  throw new BangerError('NETWORK_FAILED', `no free address left in ${subnet}`, { hint: 'delete VMs you no longer need (banger vm list)' });
}

/** A friendly name nobody has taken yet. */
export function pickName(store: Store): string {
  const taken = new Set(store.listVms().map((v) => v.name));
  for (let i = 0; i < 50; i++) {
    const name = `${ADJECTIVES[crypto.randomInt(ADJECTIVES.length)]}-${NOUNS[crypto.randomInt(NOUNS.length)]}`;
    if (!taken.has(name)) return name;
  }
  return `vm-${crypto.randomBytes(3).toString('hex')}`;
}

/** A fresh id with the MAC address and tap name derived from it. */
export function newVmIdentity(): { id: string; mac: string; tap: string } {
  const id = crypto.randomBytes(6).toString('hex');
  return { id, mac: `52:54:00:${id.slice(6, 8)}:${id.slice(8, 10)}:${id.slice(10, 12)}`, tap: `bgt${id}` };
}

export function checkNameFree(store: Store, name: string): void {
  if (store.findVms(name).some((v) => v.name === name)) {
    throw new BangerError('VM_NAME_TAKEN', `a VM named ${name} already exists`, { hint: `pick another --name, or remove it: banger vm delete ${name}` });
  }
}
