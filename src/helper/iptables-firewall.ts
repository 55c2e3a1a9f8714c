// The guests' firewall with iptables, for hosts without nft: two chains of banger's per bridge, jumped to from
// FORWARD and nat POSTROUTING. A guest's NAT is one accept rule at the top of the forward chain and one
// masquerade rule, both tagged with a comment that names its address; the forward chain ends in the drops.
import type { FirewallScope, GuestFirewall } from './guest-firewall.ts';
import { enableForwarding, firewallFailure, runInScope, tryInScope } from './guest-firewall.ts';

/** The tag on a guest's rules, by which they are found, listed and removed. */
export const natComment = (ip: string): string => `banger-nat:${ip}`;
const TAGGED = /--comment "?banger-nat:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})"?/;

type Table = 'filter' | 'nat';

export class IptablesFirewall implements GuestFirewall {
  private readonly scope: FirewallScope;
  /** At most 28 characters: "BANGER-FWD-" and a bridge name of at most 15. */
  readonly forwardChain: string;
  readonly natChain: string;

  constructor(scope: FirewallScope) {
    this.scope = scope;
    this.forwardChain = `BANGER-FWD-${scope.bridge}`;
    this.natChain = `BANGER-NAT-${scope.bridge}`;
  }

  /** The forward chain's own rules, after the guests': the bridge's own traffic and replies pass, the rest drops. */
  private baseRules(): string[][] {
    const br = this.scope.bridge;
    return [
      ['-i', br, '-o', br, '-j', 'ACCEPT'],
      ['-o', br, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT'],
      ['-i', br, '-j', 'DROP'],
      ['-o', br, '-j', 'DROP'],
    ];
  }

  private guestRules(ip: string): Array<[Table, string, string[]]> {
    const br = this.scope.bridge;
    const tag = ['-m', 'comment', '--comment', natComment(ip)];
    return [
      ['filter', this.forwardChain, ['-i', br, '-s', ip, ...tag, '-j', 'ACCEPT']],
      ['nat', this.natChain, ['-s', ip, '!', '-o', br, ...tag, '-j', 'MASQUERADE']],
    ];
  }

  private args(table: Table, args: string[]): string[] {
    return ['-w', '-t', table, ...args];
  }

  private async run(table: Table, args: string[]): Promise<void> {
    await runInScope(this.scope, 'iptables', this.args(table, args));
  }

  private async has(table: Table, chain: string, rule: string[]): Promise<boolean> {
    return (await tryInScope(this.scope, 'iptables', this.args(table, ['-C', chain, ...rule]))).code === 0;
  }

  /** `chain` exists and `hook` jumps to it first. */
  private async ensureChain(table: Table, chain: string, hook: string): Promise<void> {
    const made = await tryInScope(this.scope, 'iptables', this.args(table, ['-N', chain]));
    if (made.code !== 0 && !/already exists/i.test(made.stderr)) throw firewallFailure(this.scope, 'iptables', this.args(table, ['-N', chain]), made);
    if (!(await this.has(table, hook, ['-j', chain]))) await this.run(table, ['-I', hook, '1', '-j', chain]);
  }

  async isolate(): Promise<void> {
    await this.ensureChain('filter', this.forwardChain, 'FORWARD');
    await this.ensureChain('nat', this.natChain, 'POSTROUTING');
    let complete = true;
    for (const rule of this.baseRules()) complete = complete && (await this.has('filter', this.forwardChain, rule));
    if (complete) return;
    // Written afresh, guests' rules first, so the drops come last whatever was changed by hand.
    const guests = await this.natAddresses();
    await this.run('filter', ['-F', this.forwardChain]);
    for (const ip of guests) await this.run('filter', ['-A', this.forwardChain, ...this.guestRules(ip)[0]![2]]);
    for (const rule of this.baseRules()) await this.run('filter', ['-A', this.forwardChain, ...rule]);
  }

  async enableNat(ip: string): Promise<void> {
    await enableForwarding(this.scope);
    await this.isolate();
    for (const [table, chain, rule] of this.guestRules(ip)) {
      if (!(await this.has(table, chain, rule))) await this.run(table, ['-I', chain, '1', ...rule]);
    }
  }

  async disableNat(ip: string): Promise<void> {
    for (const [table, chain, rule] of this.guestRules(ip)) {
      // A rule added twice (by hand, or a race) is removed as often as it is there; a missing chain has none.
      for (let i = 0; i < 16 && (await this.has(table, chain, rule)); i++) await this.run(table, ['-D', chain, ...rule]);
    }
  }

  async natAddresses(): Promise<string[]> {
    const ips = new Set<string>();
    for (const [table, chain] of [['filter', this.forwardChain], ['nat', this.natChain]] as const) {
      const args = this.args(table, ['-S', chain]);
      const r = await tryInScope(this.scope, 'iptables', args);
      // Status 1: no such chain (iptables-nft also says so when the table is missing), so no rules of banger's.
      if (r.code === 1) continue;
      if (r.code !== 0) throw firewallFailure(this.scope, 'iptables', args, r);
      for (const line of r.stdout.split('\n')) {
        const ip = TAGGED.exec(line)?.[1];
        if (ip !== undefined) ips.add(ip);
      }
    }
    return [...ips].sort();
  }
}
