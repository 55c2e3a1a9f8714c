// bangerd: owns the store and all policy; every privileged step goes to bangerd-root.
import fs from 'node:fs';
import path from 'node:path';
import type net from 'node:net';
import { ForwardService } from './services/forward-service.ts';
import { GuestService } from './services/guest-service.ts';
import { VmDnsServer } from './services/vm-dns.ts';
import { serveTunnels } from './tunnel-server.ts';
import { messageOf } from '../protocol/errors.ts';
import { serve, type Handler } from '../protocol/jsonrpc.ts';
import type { DaemonStatus } from '../protocol/methods.ts';
import { Store } from '../store/store.ts';
import type { BangerPaths } from '../system/paths.ts';
import { gatewayCidrOf, type BangerConfig } from '../system/config.ts';
import type { ProcessRunner } from '../system/process.ts';
import { runChecked } from '../system/process.ts';
import { systemClock, type Clock } from '../system/clock.ts';
import { listenUnix } from '../system/socket-server.ts';
import { HelperClient, helperClientFor } from './helper-client.ts';
import type { PrivilegedOps } from '../protocol/privileged-ops.ts';
import { vmFilesIn, type VmmDriver } from '../vmm/driver.ts';
import { readAgentBinary } from '../system/agent-binary.ts';
import { AgentService } from './services/agent-service.ts';
import { buildVmmDriver } from './vmm-setup.ts';
import { BUILD, VERSION } from '../version.ts';
import { ImageService } from './services/image-service.ts';
import { RegistryClient } from '../image/oci-registry.ts';
import { dockerConfigCredentials } from '../image/docker-config.ts';
import { loadCatalog, type Catalog } from '../image/catalog.ts';
import { KernelService } from './services/kernel-service.ts';
import { VmService } from './services/vm-service.ts';
import { WorkspaceService } from './services/workspace-service.ts';
import { imageTraits } from './services/vm-image.ts';
import { createRpcHandlers } from './rpc-handlers.ts';
import { DoctorService } from './services/doctor-service.ts';

/** Methods that only read: they do not count as operations in flight (daemon.status). */
const READ_ONLY_METHODS: ReadonlySet<string> = new Set([
  'vm.list', 'vm.show', 'vm.ssh', 'vm.logs', 'vm.health', 'vm.ports', 'vm.stats', 'image.list', 'image.show', 'image.cache.list',
  'kernel.list', 'kernel.catalog', 'kernel.show', 'daemon.version', 'daemon.status', 'daemon.doctor', 'daemon.shutdown',
]);

/** systemd-resolved's varlink socket: present while resolved runs. */
const RESOLVED_SOCKET = '/run/systemd/resolve/io.systemd.Resolve';

/** Where `docker login` keeps credentials: $DOCKER_CONFIG/config.json, else ~/.docker/config.json. */
function dockerConfigFile(): string {
  return path.join(process.env.DOCKER_CONFIG ?? path.join(process.env.HOME ?? '/root', '.docker'), 'config.json');
}

export interface DaemonDeps {
  paths: BangerPaths;
  config: BangerConfig;
  runner: ProcessRunner;
  clock?: Clock;
  ops?: PrivilegedOps;
  driver?: VmmDriver;
  log?: (message: string) => void;
  /** The guest agent each VM carries; the built dist-agent/banger-agent when not given. */
  agentBinary?: () => Buffer;
  /** The OCI registry client for a pull; one honouring config and ~/.docker/config.json when not given. */
  registry?: () => RegistryClient;
  /** Called after daemon.shutdown is answered; bangerd's main closes the daemon and exits. Default: close. */
  onShutdown?: () => void;
}

export class Daemon {
  readonly store: Store;
  readonly vms: VmService;
  readonly images: ImageService;
  readonly kernels: KernelService;
  readonly workspaces: WorkspaceService;
  readonly agents: AgentService;
  readonly forwards: ForwardService;
  readonly guests: GuestService;
  readonly doctor: DoctorService;
  private tunnelServer: net.Server | null = null;
  private dns: VmDnsServer | null = null;
  private dnsError: string | null = null;
  private readonly deps: DaemonDeps;
  private readonly ops: PrivilegedOps;
  private readonly log: (message: string) => void;
  private server: net.Server | null = null;
  private stopping = false;
  private readonly inFlight: string[] = [];

  constructor(deps: DaemonDeps) {
    this.deps = deps;
    const { paths, config, runner } = deps;
    const clock = deps.clock ?? systemClock;
    const log = deps.log ?? ((m: string) => process.stderr.write(`${new Date(clock.now()).toISOString()} ${m}\n`));
    this.log = log;
    this.store = new Store(paths.db, clock);
    // As root, bangerd starts a bangerd-root that died again; otherwise its errors say what to run.
    this.ops = deps.ops ?? helperClientFor(paths, config.network, clock);
    const driver = deps.driver ?? buildVmmDriver({ config, runner, ops: this.ops, clock, stateDir: paths.stateDir, vmsDir: paths.vmsDir, log });
    const catalog = (): Promise<Catalog> => loadCatalog(config.image.catalog);
    this.kernels = new KernelService({ store: this.store, runner, clock, kernelsDir: paths.kernelsDir, catalog });
    this.images = new ImageService({
      store: this.store, ops: this.ops, runner, clock, imagesDir: paths.imagesDir, vmsDir: paths.vmsDir, mirror: config.image.debianMirror, blobCacheDir: paths.blobCacheDir, log,
      catalog, kernels: this.kernels, findVm: (ref) => this.vms.show(ref),
      registry: deps.registry ?? (() => new RegistryClient({ insecure: config.image.insecureRegistries, credentials: dockerConfigCredentials(dockerConfigFile()) })),
    });
    this.agents = new AgentService({ store: this.store, clock, log, endpoint: (vm) => driver.agentEndpoint(vmFilesIn(path.join(paths.vmsDir, vm.id))) });
    this.vms = new VmService({
      store: this.store, driver, ops: this.ops, runner, clock, config, kernels: this.kernels, images: this.images,
      vmsDir: paths.vmsDir, sshKey: path.join(paths.sshDir, 'id_ed25519'), log, agents: this.agents, agentBinary: deps.agentBinary ?? (() => readAgentBinary()),
    });
    this.workspaces = new WorkspaceService({
      vms: this.vms, store: this.store, runner, log, agents: this.agents, hasSshd: (vm) => imageTraits(this.store, vm).hasSshd,
    });
    this.forwards = new ForwardService({ store: this.store, clock, agents: this.agents, vm: (id) => this.store.getVm(id), log });
    this.guests = new GuestService({ agents: this.agents, forwards: this.forwards, show: (ref) => this.vms.show(ref) });
    // A VM that stops or is deleted takes its forwards with it.
    this.vms.onStopped((vmId) => this.forwards.dropAll(vmId));
    this.doctor = new DoctorService({ config, ops: this.ops, runner, driver, kernels: this.kernels, images: this.images, vms: this.vms, dns: () => this.dnsStatus() });
  }

  /** Creates banger's ssh key pair once; it is the only key guests accept. */
  async ensureSshKey(): Promise<void> {
    const key = path.join(this.deps.paths.sshDir, 'id_ed25519');
    if (fs.existsSync(key) && fs.existsSync(`${key}.pub`)) return;
    fs.mkdirSync(this.deps.paths.sshDir, { recursive: true, mode: 0o700 });
    fs.rmSync(key, { force: true });
    fs.rmSync(`${key}.pub`, { force: true });
    await runChecked(this.deps.runner, 'ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'banger', '-f', key]);
  }

  handlers(): Map<string, Handler> {
    const handlers = createRpcHandlers({
      vms: this.vms,
      images: this.images,
      kernels: this.kernels,
      workspaces: this.workspaces,
      guests: this.guests,
      version: () => ({ version: VERSION, commit: BUILD.commit, builtAt: BUILD.builtAt, node: process.version, pid: process.pid }),
      status: () => this.status(),
      doctor: () => this.doctor.checks(),
      shutdown: this.deps.onShutdown ?? (() => void this.close()),
    });
    // Calls that change something are counted while they run, for daemon.status (banger update waits for none).
    for (const [method, handler] of handlers) {
      if (READ_ONLY_METHODS.has(method)) continue;
      handlers.set(method, async (params, ctx) => {
        this.inFlight.push(method);
        try {
          return await handler(params, ctx);
        } finally {
          this.inFlight.splice(this.inFlight.indexOf(method), 1);
        }
      });
    }
    return handlers;
  }

  private async status(): Promise<DaemonStatus> {
    let helper: DaemonStatus['helper'] = { reachable: false, socket: this.deps.paths.helperSocket, pid: null };
    try {
      const pong = await this.ops.ping();
      helper = { reachable: true, socket: this.deps.paths.helperSocket, pid: pong.pid };
    } catch {
      // Reported as unreachable.
    }
    const vms = this.vms.list();
    return {
      version: VERSION,
      pid: process.pid,
      home: this.deps.paths.home ?? this.deps.paths.stateDir,
      socket: this.deps.paths.daemonSocket,
      helper,
      netns: this.deps.config.network.netns,
      dns: this.dnsStatus(),
      vms: { total: vms.length, running: vms.filter((v) => v.state === 'running').length },
      operations: [...this.inFlight],
      sessions: await new Promise<number>((resolve) => (this.tunnelServer ? this.tunnelServer.getConnections((err, n) => resolve(err ? 0 : n)) : resolve(0))),
    };
  }

  private dnsStatus(): DaemonStatus['dns'] {
    if (this.dns) return { listening: true, address: `127.0.0.1:${this.dns.port}`, error: null };
    return { listening: false, address: null, error: this.dnsError ?? (this.deps.config.dns.port === 0 ? 'turned off ([dns] port = 0)' : null) };
  }

  async listen(): Promise<void> {
    await this.ensureSshKey();
    await this.vms.reconcile();
    this.images.sweep();
    this.server = await listenUnix(this.deps.paths.daemonSocket, { mode: 0o600 });
    // The user sees only the message; the stack goes to the log that their hint points at.
    serve(this.server, this.handlers(), {
      identity: { name: 'bangerd', unavailable: 'DAEMON_UNAVAILABLE' },
      onInternalError: (method, err) => this.log(`${method} failed unexpectedly: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`),
    });
    this.tunnelServer = await listenUnix(this.deps.paths.tunnelSocket, { mode: 0o600 });
    serveTunnels(this.tunnelServer, { agents: this.agents, show: (ref) => this.vms.show(ref), runConfig: (vm) => this.store.getImage(vm.image)?.run ?? null, log: this.log });
    await this.forwards.restore();
    await this.startDns();
    fs.writeFileSync(this.deps.paths.daemonPidFile, `${process.pid}\n`);
  }

  /**
   * The `.vm` DNS server. A port another program holds does not stop bangerd (VMs work without names); the
   * failure goes to the log and to `daemon status`.
   */
  private async startDns(): Promise<void> {
    const { port } = this.deps.config.dns;
    if (port === 0) return;
    const dns = new VmDnsServer({
      host: '127.0.0.1', port, logger: this.log,
      lookup: (name) => this.store.listVms().find((vm) => vm.name === name && vm.state === 'running')?.ip,
    });
    try {
      await dns.start();
      this.dns = dns;
    } catch (err) {
      this.dnsError = messageOf(err);
      this.log(`the .vm DNS server is not running: ${this.dnsError}`);
      return;
    }
    await this.routeDnsThroughResolved(dns.port);
  }

  /**
   * On a host whose resolver is systemd-resolved, `.vm` names then resolve for every program (not only with
   * `dig @127.0.0.1 -p PORT`): bangerd-root points resolved at this server for the bridge's link. Guests in a
   * network namespace have no bridge on the host's side to route through. Not run on the machines banger is
   * tested on (no systemd there); a failure is logged and leaves names to ssh-config and dig.
   */
  private async routeDnsThroughResolved(port: number): Promise<void> {
    const { network } = this.deps.config;
    if (network.netns !== null || !fs.existsSync(RESOLVED_SOCKET)) return;
    try {
      await this.ops.ensureBridge({ bridge: network.bridge, gatewayCidr: gatewayCidrOf(network.subnet), netns: null });
      await this.ops.resolvedRoute({ bridge: network.bridge, port });
      this.log(`systemd-resolved sends .vm queries to 127.0.0.1:${port} (link ${network.bridge})`);
    } catch (err) {
      this.log(`could not route .vm through systemd-resolved: ${messageOf(err)}`);
    }
  }

  async close(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    // Running VMs are left running: their VMMs are separate processes and the next daemon finds them again.
    this.server?.close();
    this.tunnelServer?.close();
    fs.rmSync(this.deps.paths.tunnelSocket, { force: true });
    this.forwards.closeAll();
    this.agents.close();
    await this.dns?.close();
    fs.rmSync(this.deps.paths.daemonPidFile, { force: true });
    if (this.ops instanceof HelperClient) this.ops.close();
    this.store.close();
  }
}
