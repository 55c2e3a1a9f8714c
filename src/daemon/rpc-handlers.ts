// bangerd's RPC methods: each parses its params with its schema (src/protocol/daemon-schemas.ts), so a wrong
// type, an unknown field or an out-of-range number is refused with INVALID_ARGUMENT before any work runs, and
// then hands them to the service that does the work.
import type { CallContext, Handler } from '../protocol/jsonrpc.ts';
import type { DaemonStatus, MethodName, ParamsOf, ResultOf, VersionInfo } from '../protocol/methods.ts';
import { DAEMON_PARAMS } from '../protocol/daemon-schemas.ts';
import { parseParams } from '../protocol/params.ts';
import type { DoctorCheck } from '../protocol/doctor.ts';
import type { ImageService } from './services/image-service.ts';
import type { KernelService } from './services/kernel-service.ts';
import type { VmService } from './services/vm-service.ts';
import type { WorkspaceService } from './services/workspace-service.ts';
import type { GuestService } from './services/guest-service.ts';

/** What the methods call; plain objects in tests. */
export interface RpcServices {
  vms: Pick<VmService, 'create' | 'start' | 'stop' | 'delete' | 'list' | 'show' | 'sshTarget' | 'logs' | 'restart' | 'kill' | 'set' | 'prune'>;
  images: Pick<ImageService, 'list' | 'pull' | 'show' | 'delete' | 'cacheList' | 'cachePrune' | 'makeBundle' | 'register' | 'promote'>;
  kernels: Pick<KernelService, 'list' | 'catalog' | 'pull' | 'import' | 'show' | 'delete'>;
  workspaces: Pick<WorkspaceService, 'create' | 'prepare' | 'bootstrap' | 'export'>;
  guests: Pick<GuestService, 'health' | 'ports' | 'stats' | 'forward' | 'unforward'>;
  version(): VersionInfo;
  status(): Promise<DaemonStatus>;
  doctor(): Promise<DoctorCheck[]>;
  /** Called once daemon.shutdown has been answered; the daemon closes and exits. */
  shutdown(): void;
}

/** The handler of every method in methods.ts. */
export function createRpcHandlers(services: RpcServices): Map<string, Handler> {
  const h = new Map<string, Handler>();
  const on = <M extends MethodName>(method: M, fn: (params: ParamsOf<M>, ctx: CallContext) => Promise<ResultOf<M>> | ResultOf<M>): void => {
    const schema = DAEMON_PARAMS[method];
    // The schema's output is ParamsOf<M> (daemon-schemas.ts checks it); TypeScript cannot follow that through M.
    h.set(method, async (raw, ctx) => fn(parseParams(schema, method, raw) as ParamsOf<M>, ctx));
  };
  const { vms } = services;
  // A VM made with a workspace is the workspace service's: it plans the checkout and seeds the work disk.
  on('vm.create', (p, ctx) => (p.workspace ? services.workspaces.create({ ...p, workspace: p.workspace }, ctx) : vms.create(p, ctx)));
  on('vm.start', (p, ctx) => vms.start(p.ref, p, ctx));
  on('vm.stop', (p) => vms.stop(p.ref));
  on('vm.delete', (p) => vms.delete(p.ref));
  on('vm.list', () => vms.list());
  on('vm.show', (p) => vms.show(p.ref));
  on('vm.ssh', (p) => vms.sshTarget(p.ref));
  on('vm.logs', (p) => vms.logs(p.ref, p.offset ?? 0));
  on('vm.workspace.prepare', (p, ctx) => services.workspaces.prepare(p, ctx));
  on('vm.workspace.bootstrap', (p, ctx) => services.workspaces.bootstrap(p, ctx));
  on('vm.workspace.export', (p, ctx) => services.workspaces.export(p, ctx));
  on('vm.restart', (p, ctx) => vms.restart(p.ref, p, ctx));
  on('vm.kill', (p) => vms.kill(p.ref, p.signal));
  on('vm.set', (p) => vms.set(p));
  on('vm.prune', (p) => vms.prune(p.ids));
  on('vm.health', (p) => services.guests.health(p.ref));
  on('vm.ports', (p, ctx) => services.guests.ports(p.ref, ctx.signal));
  on('vm.stats', (p) => services.guests.stats(p.ref));
  on('vm.forward', (p) => services.guests.forward(p.ref, p.guestPort, p.hostPort));
  on('vm.unforward', (p) => services.guests.unforward(p.ref, p.hostPort));
  on('image.list', () => services.images.list());
  on('image.pull', (p, ctx) => services.images.pull(p, ctx));
  on('image.show', (p) => services.images.show(p.name));
  on('image.delete', (p) => services.images.delete(p.name));
  on('image.cache.list', () => services.images.cacheList());
  on('image.cache.prune', (p) => services.images.cachePrune(p));
  on('image.makeBundle', (p, ctx) => services.images.makeBundle(p, ctx));
  on('image.register', (p, ctx) => services.images.register(p, ctx));
  on('image.promote', (p, ctx) => services.images.promote(p.vm, p.name, ctx));
  on('kernel.list', () => services.kernels.list());
  on('kernel.catalog', () => services.kernels.catalog());
  on('kernel.pull', (p, ctx) => services.kernels.pull(p.name, p.force === true, ctx));
  on('kernel.import', (p, ctx) => services.kernels.import(p.name, p.from, ctx));
  on('kernel.show', (p) => services.kernels.show(p.name));
  on('kernel.delete', (p) => services.kernels.delete(p.name));
  on('daemon.version', () => services.version());
  on('daemon.status', () => services.status());
  on('daemon.doctor', () => services.doctor());
  on('daemon.shutdown', () => {
    // After this turn, so the answer is written before the daemon closes.
    setImmediate(() => services.shutdown());
    return { ok: true as const };
  });
  return h;
}
