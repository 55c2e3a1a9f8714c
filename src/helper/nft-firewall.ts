// The guests' firewall with nftables: one table of banger's per bridge, holding a set of the guest addresses
// with NAT, a forward chain that lets only those out, and a postrouting chain that masquerades them. Enabling or
// disabling a guest's NAT adds or removes one set element; every change is one atomic nft transaction.
import type { FirewallScope, GuestFirewall } from './guest-firewall.ts';
import { enableForwarding, firewallFailure, runInScope, tryInScope } from './guest-firewall.ts';

export const NAT_SET = 'nat_guests';

/**
 * The table of `bridge`'s rules: banger_ and the bridge name, whose characters nft does not take in a name
 * written as ('-', '.') are spelled out, and '_' doubled, so two bridges never share a table.
 */
export function nftTableName(bridge: string): string {
  return `banger_${bridge.replace(/[_.-]/g, (c) => ({ _: '__', '.': '_d', '-': '_h' })[c]!)}`;
}

/**
 * The table, its set and chains made when missing, and the chains' rules written afresh (the set's elements are
 * kept). Forward: the bridge's own traffic passes; from the bridge, only NAT'd guests get out; into the bridge,
 * only replies. An accept here does not override another table's drop, but a drop here is final.
 */
export function nftRuleset(bridge: string): string[] {
  const t = `inet ${nftTableName(bridge)}`;
  const br = JSON.stringify(bridge);
  return [
    `add table ${t}`,
    `add set ${t} ${NAT_SET} { type ipv4_addr; }`,
    `add chain ${t} forward { type filter hook forward priority filter; policy accept; }`,
    `add chain ${t} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
    `flush chain ${t} forward`,
    `flush chain ${t} postrouting`,
    `add rule ${t} forward iifname ${br} oifname ${br} accept`,
    `add rule ${t} forward iifname ${br} ip saddr @${NAT_SET} accept`,
    `add rule ${t} forward iifname ${br} drop`,
    `add rule ${t} forward oifname ${br} ct state established,related accept`,
    `add rule ${t} forward oifname ${br} drop`,
    `add rule ${t} postrouting oifname != ${br} ip saddr @${NAT_SET} masquerade`,
  ];
}

/** What nft says about a table or set that is not there. */
const ABSENT = /No such file or directory/;

export class NftFirewall implements GuestFirewall {
  private readonly scope: FirewallScope;
  private readonly table: string;

  constructor(scope: FirewallScope) {
    this.scope = scope;
    this.table = `inet ${nftTableName(scope.bridge)}`;
  }

  /** Runs `lines` as one transaction: all of them happen, or none. */
  private async apply(lines: string[]): Promise<void> {
    await runInScope(this.scope, 'nft', ['-f', '-'], { input: `${lines.join('\n')}\n` });
  }

  async isolate(): Promise<void> {
    await this.apply(nftRuleset(this.scope.bridge));
  }

  async enableNat(ip: string): Promise<void> {
    await enableForwarding(this.scope);
    await this.apply([...nftRuleset(this.scope.bridge), `add element ${this.table} ${NAT_SET} { ${ip} }`]);
  }

  async disableNat(ip: string): Promise<void> {
    // nft 1.0 has no "destroy element": adding first makes the delete succeed whether or not it was there.
    const lines = [`add element ${this.table} ${NAT_SET} { ${ip} }`, `delete element ${this.table} ${NAT_SET} { ${ip} }`];
    const r = await tryInScope(this.scope, 'nft', ['-f', '-'], { input: `${lines.join('\n')}\n` });
    // No table or set: nothing of banger's to remove.
    if (r.code !== 0 && !ABSENT.test(r.stderr)) throw firewallFailure(this.scope, 'nft', ['-f', '-'], r);
  }

  async natAddresses(): Promise<string[]> {
    const args = ['-j', 'list', 'set', ...this.table.split(' '), NAT_SET];
    const r = await tryInScope(this.scope, 'nft', args);
    if (r.code !== 0) {
      if (ABSENT.test(r.stderr)) return [];
      throw firewallFailure(this.scope, 'nft', args, r);
    }
    // {"nftables": [{"metainfo": {...}}, {"set": {"name": "nat_guests", "type": "ipv4_addr", "elem": ["172.30.0.5"]}}]};
    // no "elem" when the set is empty.
    const doc = JSON.parse(r.stdout) as { nftables?: Array<{ set?: { elem?: unknown[] } }> };
    const elems = doc.nftables?.find((o) => o.set !== undefined)?.set?.elem ?? [];
    return elems.filter((e): e is string => typeof e === 'string');
  }
}
