// bangerd's side of bangerd-root's socket.
import { connect, type RpcConnection } from '../protocol/jsonrpc.ts';
import { BangerError } from '../protocol/errors.ts';
import { HELPER_METHODS, type BridgeParams, type BuildImageParams, type DeleteTapParams, type HelperPong, type LaunchQemuParams, type OpOptions, type PrivilegedOps, type TapParams } from '../protocol/privileged-ops.ts';

/** Talks to a running bangerd-root over its socket; reconnects when the helper restarts. */
export class HelperClient implements PrivilegedOps {
  private readonly socketPath: string;
  private readonly startHint: string;
  private connection: RpcConnection | null = null;

  /** `startHint` is the command that starts the helper, shown when it is not running. */
  constructor(socketPath: string, startHint = 'start it as root: banger daemon start') {
    this.socketPath = socketPath;
    this.startHint = startHint;
  }

  private async conn(): Promise<RpcConnection> {
    if (this.connection) return this.connection;
    try {
      const c = await connect(this.socketPath, { peer: { name: 'bangerd-root', unavailable: 'HELPER_UNAVAILABLE', hint: this.startHint } });
      c.onClosed(() => {
        if (this.connection === c) this.connection = null;
      });
      this.connection = c;
      return c;
    } catch (err) {
      throw new BangerError('HELPER_UNAVAILABLE', `the privileged helper bangerd-root is not running (no answer on ${this.socketPath})`, {
        hint: this.startHint,
        cause: err,
      });
    }
  }

  private async call<T>(method: (typeof HELPER_METHODS)[number], params: unknown, options: OpOptions = {}): Promise<T> {
    const c = await this.conn();
    return c.call<T>(method, params, { ...(options.signal ? { signal: options.signal } : {}), ...(options.progress ? { onProgress: options.progress } : {}) });
  }

  ping(): Promise<HelperPong> { return this.call('helper.ping', {}); }
  async ensureBridge(params: BridgeParams): Promise<void> { await this.call('net.ensureBridge', params); }
  async createTap(params: TapParams): Promise<void> { await this.call('net.createTap', params); }
  async deleteTap(params: DeleteTapParams): Promise<void> { await this.call('net.deleteTap', params); }
  launchQemu(params: LaunchQemuParams, options?: OpOptions): Promise<{ pid: number }> { return this.call('vmm.launchQemu', params, options); }
  buildImage(params: BuildImageParams, options?: OpOptions): Promise<{ sizeBytes: number }> { return this.call('image.build', params, options); }
  async shutdown(): Promise<void> { await this.call('helper.shutdown', {}); }

  close(): void {
    this.connection?.close();
    this.connection = null;
  }
}
