// PrivilegedOps without root: records calls and keeps the taps and bridges that would exist on the host.
import type {
  BridgeParams, BuildImageParams, ImportLayersParams, ImportLayersResult, DeleteTapParams, HelperPong, LaunchFirecrackerParams, LaunchQemuParams, NatListParams, NatParams, OpOptions, PrivilegedOps, ResolvedRouteParams,
  ResolvedUnrouteParams, TapParams,
} from '../../src/protocol/privileged-ops.ts';
import fs from 'node:fs';
import { BangerError } from '../../src/protocol/errors.ts';

export type OpName = 'ping' | 'ensureBridge' | 'createTap' | 'deleteTap' | 'natEnable' | 'natDisable' | 'natList' | 'launchQemu' | 'launchFirecracker' | 'buildImage' | 'importLayers'
  | 'resolvedRoute' | 'resolvedUnroute';

export class FakePrivilegedOps implements PrivilegedOps {
  readonly calls: Array<{ op: OpName; params: unknown }> = [];
  /** Taps that exist now: createTap adds, deleteTap removes. */
  readonly taps = new Set<string>();
  readonly bridges = new Set<string>();
  /** Guest addresses with NAT now: natEnable adds, natDisable removes. */
  readonly natIps = new Set<string>();
  /** The DNS port .vm is routed to through systemd-resolved, per bridge: resolvedRoute sets, resolvedUnroute removes. */
  readonly resolvedRoutes = new Map<string, number>();
  /** What importLayers answers; it also writes `output` (a few bytes) as the helper would hand it over. */
  importResult: ImportLayersResult = { sizeBytes: 4096, boot: 'agent', hasSshd: false, uid: 0, gid: 0, skipped: [], droppedXattrs: [] };
  private readonly failures = new Map<OpName, Error>();
  private readonly holds = new Map<OpName, Promise<void>>();

  /** Makes every later call to `op` fail with `err` (until succeed(op)). */
  fail(op: OpName, err: Error = new BangerError('NETWORK_FAILED', `fake ${op} failed`)): void {
    this.failures.set(op, err);
  }

  succeed(op: OpName): void {
    this.failures.delete(op);
  }

  /** Makes later calls to `op` wait, after being recorded, until the returned function is called (to expose races). */
  hold(op: OpName): () => void {
    let release!: () => void;
    this.holds.set(op, new Promise<void>((resolve) => {
      release = resolve;
    }));
    return () => {
      this.holds.delete(op);
      release();
    };
  }

  callsTo(op: OpName): unknown[] {
    return this.calls.filter((c) => c.op === op).map((c) => c.params);
  }

  private async record(op: OpName, params: unknown): Promise<void> {
    this.calls.push({ op, params });
    await this.holds.get(op);
    const err = this.failures.get(op);
    if (err) throw err;
  }

  /** What ping answers. */
  pong: HelperPong = { pid: 4242, version: 'fake', network: { bridge: 'banger0', subnet: '172.30.0.0/24', netns: null } };

  async ping(): Promise<HelperPong> {
    await this.record('ping', {});
    return this.pong;
  }

  async ensureBridge(params: BridgeParams): Promise<void> {
    await this.record('ensureBridge', params);
    this.bridges.add(params.bridge);
  }

  async createTap(params: TapParams): Promise<void> {
    await this.record('createTap', params);
    if (!this.bridges.has(params.bridge)) throw new BangerError('NETWORK_FAILED', `fake: bridge ${params.bridge} does not exist`);
    this.taps.add(params.tap);
  }

  /** Like the helper, deleting a tap that is not there succeeds. */
  async deleteTap(params: DeleteTapParams): Promise<void> {
    await this.record('deleteTap', params);
    this.taps.delete(params.tap);
  }

  async natEnable(params: NatParams): Promise<void> {
    await this.record('natEnable', params);
    this.natIps.add(params.ip);
  }

  /** Like the helper, disabling NAT a guest does not have succeeds. */
  async natDisable(params: NatParams): Promise<void> {
    await this.record('natDisable', params);
    this.natIps.delete(params.ip);
  }

  async natList(params: NatListParams): Promise<{ ips: string[] }> {
    await this.record('natList', params);
    return { ips: [...this.natIps].sort() };
  }

  async launchQemu(params: LaunchQemuParams, _options?: OpOptions): Promise<{ pid: number }> {
    await this.record('launchQemu', params);
    return { pid: 5000 + this.callsTo('launchQemu').length };
  }

  /** Records the launch; `launchFirecrackerWith` (a real HelperService's launcher, say) does the launching when set. */
  launchFirecrackerWith: ((params: LaunchFirecrackerParams) => Promise<{ pid: number }>) | null = null;

  async launchFirecracker(params: LaunchFirecrackerParams, _options?: OpOptions): Promise<{ pid: number }> {
    await this.record('launchFirecracker', params);
    if (this.launchFirecrackerWith) return this.launchFirecrackerWith(params);
    return { pid: 6000 + this.callsTo('launchFirecracker').length };
  }

  async buildImage(params: BuildImageParams, _options?: OpOptions): Promise<{ sizeBytes: number }> {
    await this.record('buildImage', params);
    return { sizeBytes: 1024 };
  }

  async importLayers(params: ImportLayersParams, _options?: OpOptions): Promise<ImportLayersResult> {
    await this.record('importLayers', params);
    fs.writeFileSync(params.output, 'fake ext4');
    return structuredClone(this.importResult);
  }

  async resolvedRoute(params: ResolvedRouteParams): Promise<void> {
    await this.record('resolvedRoute', params);
    this.resolvedRoutes.set(params.bridge, params.port);
  }

  /** Like the helper, unrouting a bridge that has no route succeeds. */
  async resolvedUnroute(params: ResolvedUnrouteParams): Promise<void> {
    await this.record('resolvedUnroute', params);
    this.resolvedRoutes.delete(params.bridge);
  }
}
