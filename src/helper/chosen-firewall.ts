// The guests' firewall bangerd-root uses: nft, or iptables where nft is not installed (decided on first use, so a
// helper that never changes a rule needs neither), with its changes made one at a time.
import { detectFirewallTool, type FirewallScope, type FirewallTool, type GuestFirewall } from './guest-firewall.ts';
import { IptablesFirewall } from './iptables-firewall.ts';
import { NftFirewall } from './nft-firewall.ts';

export class ChosenFirewall implements GuestFirewall {
  private readonly scope: FirewallScope;
  private readonly detect: () => FirewallTool;
  private chosen: GuestFirewall | null = null;
  /** The iptables changes check, then change: two at once could both add a rule. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(scope: FirewallScope, detect: () => FirewallTool = detectFirewallTool) {
    this.scope = scope;
    this.detect = detect;
  }

  private serially<T>(change: (firewall: GuestFirewall) => Promise<T>): Promise<T> {
    const run = (): Promise<T> => {
      this.chosen ??= this.detect() === 'nft' ? new NftFirewall(this.scope) : new IptablesFirewall(this.scope);
      return change(this.chosen);
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  isolate(): Promise<void> { return this.serially((f) => f.isolate()); }
  enableNat(ip: string): Promise<void> { return this.serially((f) => f.enableNat(ip)); }
  disableNat(ip: string): Promise<void> { return this.serially((f) => f.disableNat(ip)); }
  natAddresses(): Promise<string[]> { return this.serially((f) => f.natAddresses()); }
}
