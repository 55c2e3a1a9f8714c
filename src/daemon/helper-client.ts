// bangerd's side of bangerd-root's socket.
import path from 'node:path';
import { connect, type RpcConnection } from '../protocol/jsonrpc.ts';
import { BangerError } from '../protocol/errors.ts';
import { HELPER_METHODS, type BridgeParams, type BuildImageParams, type ImportLayersParams, type ImportLayersResult, type DeleteTapParams, type HelperPong, type LaunchFirecrackerParams, type LaunchQemuParams, type NatListParams, type NatParams, type OpOptions, type PrivilegedOps, type ResolvedRouteParams, type ResolvedUnrouteParams, type TapParams } from '../protocol/privileged-ops.ts';
import { SingleFlight, systemClock, type Clock } from '../system/clock.ts';
import { logTail, spawnDetached, waitForSocket } from '../system/detached-start.ts';
import { helperArgs, helperStartCommand } from '../system/helper-command.ts';
import type { BangerPaths } from '../system/paths.ts';
import type { BangerConfig } from '../system/config.ts';

export interface HelperClientOptions {
  /** The command that starts the helper, shown when it is not running and this client cannot start it. */
  startHint?: string;
  /**
   * Starts bangerd-root again when nothing answers on its socket; the call is then retried once. Only given
   * when bangerd runs as root (see helperClientFor): otherwise it lacks the rights, and says what to run.
   */
  restart?: () => Promise<void>;
}

/** Talks to a running bangerd-root over its socket; reconnects when the helper restarts. */
export class HelperClient implements PrivilegedOps {
  private readonly socketPath: string;
  private readonly startHint: string;
  private readonly restart: (() => Promise<void>) | undefined;
  /** Calls that find no connection share one connect (and one restart of the helper). */
  private readonly connecting = new SingleFlight<'connect', RpcConnection>();
  private connection: RpcConnection | null = null;

  /** `options` as a string is the start hint alone (no restart). */
  constructor(socketPath: string, options: string | HelperClientOptions = {}) {
    const opts = typeof options === 'string' ? { startHint: options } : options;
    this.socketPath = socketPath;
    this.startHint = opts.startHint ?? 'start it as root: banger daemon start';
    this.restart = opts.restart;
  }

  private async open(): Promise<RpcConnection> {
    const c = await connect(this.socketPath, { peer: { name: 'bangerd-root', unavailable: 'HELPER_UNAVAILABLE', hint: this.startHint } });
    c.onClosed(() => {
      if (this.connection === c) this.connection = null;
    });
    this.connection = c;
    return c;
  }

  private unavailable(cause: unknown): BangerError {
    return new BangerError('HELPER_UNAVAILABLE', `the privileged helper bangerd-root is not running (no answer on ${this.socketPath})`, { hint: this.startHint, cause });
  }

  /**
   * A connection, starting the helper again (once) when it is gone. Only a failed connect leads to a restart:
   * a request the helper died in the middle of may have done part of its work, so it is not sent again.
   */
  private async connectOrRestart(): Promise<RpcConnection> {
    try {
      return await this.open();
    } catch (err) {
      if (!this.restart) throw this.unavailable(err);
    }
    await this.restart();
    try {
      return await this.open();
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  private async conn(): Promise<RpcConnection> {
    return this.connection ?? this.connecting.run('connect', () => this.connectOrRestart());
  }

  private async call<T>(method: (typeof HELPER_METHODS)[number], params: unknown, options: OpOptions = {}): Promise<T> {
    const c = await this.conn();
    return c.call<T>(method, params, { ...(options.signal ? { signal: options.signal } : {}), ...(options.progress ? { onProgress: options.progress } : {}) });
  }

  ping(): Promise<HelperPong> { return this.call('helper.ping', {}); }
  async ensureBridge(params: BridgeParams): Promise<void> { await this.call('net.ensureBridge', params); }
  async createTap(params: TapParams): Promise<void> { await this.call('net.createTap', params); }
  async deleteTap(params: DeleteTapParams): Promise<void> { await this.call('net.deleteTap', params); }
  async natEnable(params: NatParams): Promise<void> { await this.call('net.natEnable', params); }
  async natDisable(params: NatParams): Promise<void> { await this.call('net.natDisable', params); }
  natList(params: NatListParams): Promise<{ ips: string[] }> { return this.call('net.natList', params); }
  launchQemu(params: LaunchQemuParams, options?: OpOptions): Promise<{ pid: number }> { return this.call('vmm.launchQemu', params, options); }
  launchFirecracker(params: LaunchFirecrackerParams, options?: OpOptions): Promise<{ pid: number }> { return this.call('vmm.launchFirecracker', params, options); }
  buildImage(params: BuildImageParams, options?: OpOptions): Promise<{ sizeBytes: number }> { return this.call('image.build', params, options); }
  importLayers(params: ImportLayersParams, options?: OpOptions): Promise<ImportLayersResult> { return this.call('image.importLayers', params, options); }
  async resolvedRoute(params: ResolvedRouteParams): Promise<void> { await this.call('net.resolvedRoute', params); }
  async resolvedUnroute(params: ResolvedUnrouteParams): Promise<void> { await this.call('net.resolvedUnroute', params); }
  async shutdown(): Promise<void> { await this.call('helper.shutdown', {}); }

  close(): void {
    this.connection?.close();
    this.connection = null;
  }
}

/** How long a restarted bangerd-root may take to answer on its socket. */
export const HELPER_START_TIMEOUT_MS = 10_000;

export interface HelperStartWait {
  socketPath: string;
  /** The started helper; `exited` turns true when it ends (it failed to start). */
  child: { exited: boolean };
  logFile: string;
  /** The command that starts it by hand, for the hint. */
  startCommand: string;
  clock: Clock;
}

/** Waits until a just-started bangerd-root answers on its socket; HELPER_UNAVAILABLE with its log's tail when it does not. */
export async function waitForHelperSocket(wait: HelperStartWait): Promise<void> {
  if (!(await waitForSocket({ socketPath: wait.socketPath, child: wait.child, timeoutMs: HELPER_START_TIMEOUT_MS, clock: wait.clock }))) {
    const log = logTail(wait.logFile);
    throw new BangerError('HELPER_UNAVAILABLE', `bangerd-root stopped answering and did not start again${log ? `:\n${log}` : ''}`, {
      hint: `see ${wait.logFile}, then start it by hand: ${wait.startCommand}`,
    });
  }
}

/**
 * Starts bangerd-root as autostart does (bin/bangerd-root with helperArgs, detached, logging to the log
 * directory) and waits for its socket. bangerd must be root: the helper's owner is bangerd's own uid.
 */
export function helperRestart(paths: BangerPaths, network: BangerConfig['network'], clock: Clock = systemClock): () => Promise<void> {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  return async () => {
    const logFile = path.join(paths.logDir, 'bangerd-root.log');
    // The network bangerd runs with, not config.toml as it is now: a helper for other settings would refuse it.
    const state = spawnDetached('bangerd-root', helperArgs(paths, uid, gid, network), logFile);
    await waitForHelperSocket({ socketPath: paths.helperSocket, child: state, logFile, startCommand: helperStartCommand(paths, uid, gid, network), clock });
  };
}

/**
 * The client bangerd uses: when bangerd runs as root it starts a helper that died again by itself; otherwise a
 * missing helper is HELPER_UNAVAILABLE at once, with the exact sudo command that starts it.
 */
export function helperClientFor(paths: BangerPaths, network: BangerConfig['network'], clock: Clock = systemClock): HelperClient {
  const uid = process.getuid?.() ?? 0;
  const startHint = `start it: ${helperStartCommand(paths, uid, process.getgid?.() ?? 0, network)}`;
  return new HelperClient(paths.helperSocket, uid === 0 ? { startHint, restart: helperRestart(paths, network, clock) } : { startHint });
}
