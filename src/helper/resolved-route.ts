// Sends the host's queries for `.vm` to bangerd's DNS server, on hosts where systemd-resolved is the resolver:
// banger's bridge gets 127.0.0.1:PORT as its DNS server and `~vm` as a routing-only domain, so resolved asks that
// server for NAME.vm, and only for names in .vm. The setting is resolved's runtime state: it is gone after a
// reboot or a restart of resolved, and `resolvectl revert` takes it away.
import { BangerError } from '../protocol/errors.ts';
import type { HelperNetwork, ResolvedRouteParams, ResolvedUnrouteParams } from '../protocol/privileged-ops.ts';
import { lastLines, runChecked, type ProcessRunner } from '../system/process.ts';
import { int } from './helper-checks.ts';

/** How to route .vm by hand where resolved cannot do it; `port` is bangerd's DNS port when known. */
export function manualDnsRecipe(port: number | null): string {
  const p = port === null ? 'PORT' : String(port);
  return `send .vm to bangerd's DNS server yourself, e.g. with dnsmasq: server=/vm/127.0.0.1#${p}; check it answers: dig @127.0.0.1 -p ${p} NAME.vm; `
    + 'ssh NAME.vm works without any of this after: banger ssh-config --install';
}

export interface ResolvedRoutingOptions {
  /** Runs resolvectl; the helper's runner, whose children die with it. */
  runner: ProcessRunner;
  network: HelperNetwork;
  /** The bridge named in a request, refused unless it is the helper's own (HelperService's check). */
  checkBridge(value: unknown): string;
}

export class ResolvedRouting {
  private readonly o: ResolvedRoutingOptions;

  constructor(options: ResolvedRoutingOptions) {
    this.o = options;
  }

  /** `resolvectl dns BRIDGE 127.0.0.1:PORT` and `resolvectl domain BRIDGE ~vm`; both or neither. */
  async route(raw: ResolvedRouteParams): Promise<void> {
    const bridge = this.o.checkBridge(raw.bridge);
    const port = int(raw.port, 1, 65_535, 'DNS port');
    const { netns } = this.o.network;
    if (netns !== null) {
      throw new BangerError('NETWORK_FAILED', `cannot route .vm through systemd-resolved: bridge ${bridge} is in network namespace ${netns}, where the host's resolver has no link`, {
        hint: manualDnsRecipe(port),
      });
    }
    const failedHint = `is systemd-resolved running? (systemctl status systemd-resolved); otherwise ${manualDnsRecipe(port)}`;
    await this.resolvectl(['dns', bridge, `127.0.0.1:${port}`], port, failedHint);
    try {
      await this.resolvectl(['domain', bridge, '~vm'], port, failedHint);
    } catch (err) {
      // A DNS server without the routing domain would take ordinary queries on some setups: take it away again.
      await this.o.runner.run('resolvectl', ['revert', bridge]);
      throw err;
    }
  }

  /** `resolvectl revert BRIDGE`. Nothing to undo (no resolvectl, no such link, a namespace) is success. */
  async unroute(raw: ResolvedUnrouteParams): Promise<void> {
    const bridge = this.o.checkBridge(raw.bridge);
    if (this.o.network.netns !== null) return;
    let result;
    try {
      result = await this.o.runner.run('resolvectl', ['revert', bridge]);
    } catch (err) {
      if (err instanceof BangerError && err.code === 'MISSING_TOOL') return;
      throw err;
    }
    // resolved forgets a link's settings when the link goes away.
    if (result.code === 0 || /No such device/.test(result.stderr)) return;
    throw new BangerError('TOOL_FAILED', `resolvectl revert ${bridge} failed (${result.code !== null ? `exit status ${result.code}` : `killed by ${result.signal ?? 'a signal'}`}): ${lastLines(result.stderr || result.stdout, 3)}`, {
      hint: `is systemd-resolved running? (systemctl status systemd-resolved); then try by hand: sudo resolvectl revert ${bridge}`,
    });
  }

  private async resolvectl(args: string[], port: number, failedHint: string): Promise<void> {
    try {
      await runChecked(this.o.runner, 'resolvectl', args, { hint: failedHint });
    } catch (err) {
      if (err instanceof BangerError && err.code === 'MISSING_TOOL') {
        throw new BangerError('MISSING_TOOL', 'resolvectl is not installed or not on PATH: this host does not use systemd-resolved, so bangerd-root cannot route .vm to bangerd', {
          hint: manualDnsRecipe(port),
          cause: err,
        });
      }
      throw err;
    }
  }
}
