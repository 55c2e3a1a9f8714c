// A GuestFirewall that changes nothing: records each call and keeps the NAT'd addresses it would have.
import type { GuestFirewall } from '../../src/helper/guest-firewall.ts';

export class FakeGuestFirewall implements GuestFirewall {
  readonly calls: Array<[string, ...string[]]> = [];
  readonly natIps = new Set<string>();

  async isolate(): Promise<void> {
    this.calls.push(['isolate']);
  }

  async enableNat(ip: string): Promise<void> {
    this.calls.push(['enableNat', ip]);
    this.natIps.add(ip);
  }

  async disableNat(ip: string): Promise<void> {
    this.calls.push(['disableNat', ip]);
    this.natIps.delete(ip);
  }

  async natAddresses(): Promise<string[]> {
    this.calls.push(['natAddresses']);
    return [...this.natIps].sort();
  }
}
