// What the guests on a helper's bridge may reach through the host. Every guest reaches the host and the other
// guests on its bridge; only guests given NAT reach anything else, masqueraded behind the host's address.
// Implemented with nftables (nft-firewall.ts) or, where nft is not installed, iptables (iptables-firewall.ts);
// both scope every rule to the bridge, and NAT to one guest's address, so one VM's NAT never opens another's.
import { BangerError } from '../protocol/errors.ts';
import { findExecutable } from '../system/executable.ts';
import { shellQuote } from '../protocol/ssh-command.ts';
import { lastLines, runChecked, type ProcessRunner, type RunOptions, type RunResult } from '../system/process.ts';

export interface GuestFirewall {
  /**
   * Drops whatever the bridge's guests send to elsewhere than the host and the bridge, and new connections from
   * elsewhere into the bridge, unless NAT allows it; idempotent, and repairs rules changed by hand.
   */
  isolate(): Promise<void>;
  /** Lets the guest at `ip` reach beyond the host, masqueraded; idempotent. Turns on IPv4 forwarding. */
  enableNat(ip: string): Promise<void>;
  /** Takes that away; a guest without NAT, or a namespace without banger's rules, is fine. */
  disableNat(ip: string): Promise<void>;
  /** The guest addresses that have NAT now. */
  natAddresses(): Promise<string[]>;
}

/** Where a firewall's commands run: in `netns` when set (through `ip netns exec`), for the rules of `bridge`. */
export interface FirewallScope {
  runner: ProcessRunner;
  bridge: string;
  netns: string | null;
}

export type FirewallTool = 'nft' | 'iptables';

/** `command args` as run inside the scope's namespace. */
export function inScope(scope: FirewallScope, command: string, args: readonly string[]): [string, string[]] {
  return scope.netns === null ? [command, [...args]] : ['ip', ['netns', 'exec', scope.netns, command, ...args]];
}

/** Runs a firewall command in the scope's namespace; its failure is TOOL_FAILED with the command and stderr. */
export function runInScope(scope: FirewallScope, command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [program, argv] = inScope(scope, command, args);
  return runChecked(scope.runner, program, argv, { hint: `banger's firewall rules for bridge ${scope.bridge} could not be changed; check that ${command} works here`, ...options });
}

/** The same, for a command whose failure the caller reads itself. */
export function tryInScope(scope: FirewallScope, command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [program, argv] = inScope(scope, command, args);
  return scope.runner.run(program, argv, options);
}

/** TOOL_FAILED for a result of tryInScope the caller could not accept, as runChecked words it. */
export function firewallFailure(scope: FirewallScope, command: string, args: readonly string[], result: RunResult): BangerError {
  const [program, argv] = inScope(scope, command, args);
  const detail = lastLines(result.stderr, 5);
  return new BangerError('TOOL_FAILED', `${[program, ...argv].map(shellQuote).join(' ')} failed (${result.code === null ? `killed by ${result.signal ?? 'a signal'}` : `exit status ${result.code}`})${detail ? `: ${detail}` : ''}`, {
    hint: `banger's firewall rules for bridge ${scope.bridge} could not be changed; check that ${command} works here`,
  });
}

/**
 * Turns IPv4 forwarding on in the scope's namespace: NAT needs the host to route. It is left on when the last
 * guest's NAT goes: something else may rely on it, and banger's forward rules drop what is not NAT'd anyway.
 */
export async function enableForwarding(scope: FirewallScope): Promise<void> {
  await runInScope(scope, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
}

/** nft when installed, else iptables; MISSING_TOOL when neither is. */
export function detectFirewallTool(searchPath = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'): FirewallTool {
  for (const tool of ['nft', 'iptables'] as const) {
    try {
      findExecutable(tool, searchPath);
      return tool;
    } catch {
      // Not installed; try the next one.
    }
  }
  throw new BangerError('MISSING_TOOL', 'neither nft nor iptables is installed; bangerd-root needs one to keep guests off other networks and for --nat', {
    hint: 'apt-get install nftables (or run scripts/setup.sh)',
  });
}
