// bangerd-root's operations. Each one validates every argument against a narrow pattern or against banger's
// own directories before it touches the host, and runs programs with argument vectors, never shell strings.
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../protocol/errors.ts';
import type { CallContext, Handler } from '../protocol/jsonrpc.ts';
import type { ProcessRunner } from '../system/process.ts';
import { runChecked } from '../system/process.ts';
import { NAME_PATTERN, NETNS_PATTERN, SUBNET_PATTERN, gatewayCidrOf } from '../system/config.ts';
import { asOwner, ownerArgv, type Owner } from '../system/as-owner.ts';
import { buildQemuArgv } from '../system/qemu-argv.ts';
import { findExecutable } from '../system/executable.ts';
import { readPidFile } from '../system/pid-file.ts';
import { DiesWithParentRunner } from '../system/dies-with-parent.ts';
import { DEFAULT_IMAGES } from '../protocol/image-recipes.ts';
import {
  bridgeParamsSchema, buildImageParamsSchema, deleteTapParamsSchema, importLayersParamsSchema, emptyParamsSchema, launchQemuParamsSchema, natListParamsSchema, natParamsSchema,
  resolvedRouteParamsSchema, resolvedUnrouteParamsSchema, tapParamsSchema,
} from '../protocol/helper-schemas.ts';
import { buildDebianImage } from './debian-image-build.ts';
import { ChosenFirewall } from './chosen-firewall.ts';
import type { GuestFirewall } from './guest-firewall.ts';
import { refuse, refuseInvalid } from './refusal.ts';
import { ownedPath } from './owned-path.ts';
import { trustedProgram } from './trusted-program.ts';
import { checkedQemuPid, refuseUnknownVm } from './vmm-identity.ts';
import { ResolvedRouting } from './resolved-route.ts';
import { ipArgs, refuseIfNotOwnersTap, refuseIfTapInUse, type TapScope } from './tap-ownership.ts';
import { importLayers } from './image-import.ts';
import type { ImportLayersResult } from '../protocol/privileged-ops.ts';
import { DIGEST_PATTERN, TAP_PATTERN, VM_ID_PATTERN, MAC_PATTERN, CIDR_PATTERN, IPV4_PATTERN, str, matching, int, lstatOrNull, removeStale, createFresh } from './helper-checks.ts';
import type {
  BridgeParams, BuildImageParams, DeleteTapParams, ImportLayersParams, HelperNetwork, LaunchQemuParams, NatListParams, NatParams, QemuLaunchSpec, TapParams,
} from '../protocol/privileged-ops.ts';
import { VERSION } from '../version.ts';
import { systemClock, type Clock } from '../system/clock.ts';
import { FIRECRACKER_JAIL_BASE } from '../system/firecracker-layout.ts';
import { FirecrackerLauncher } from './firecracker-launch.ts';
import { launchFirecrackerParamsSchema } from '../protocol/helper-schemas.ts';

export interface HelperScope {
  owner: Owner;
  /** Directories (real paths, fixed at start) whose files the helper may hand to QEMU or write images into. */
  stateDir: string;
  cacheDir: string;
  runDir: string;
  netnsDir: string;
  /** Where the process table is read (/proc), to find the process a tap is attached to. */
  procDir: string;
  /** The one bridge, subnet and namespace this helper manages, fixed by whoever started it as root. */
  network: HelperNetwork;
  /** Where Firecracker's jails are made (a directory only root may change); FIRECRACKER_JAIL_BASE by default. */
  jailBase?: string;
}

/** Checks the network settings given to bangerd-root at start; returns a problem or null. */
export function networkScopeProblem(network: HelperScope['network']): string | null {
  if (!NAME_PATTERN.test(network.bridge)) return `bridge name ${JSON.stringify(network.bridge)} is not valid`;
  if (!SUBNET_PATTERN.test(network.subnet)) return `subnet ${JSON.stringify(network.subnet)} must be an IPv4 /24 such as 172.30.0.0/24`;
  if (network.netns !== null && !NETNS_PATTERN.test(network.netns)) return `network namespace ${JSON.stringify(network.netns)} is not valid`;
  return null;
}

export interface HelperServiceOptions {
  /** The guests' firewall for the helper's bridge and namespace; by default nft, or iptables where nft is missing. */
  firewall?: GuestFirewall;
  /** Paces waits for a started VMM (its pid file, its API socket); the system clock by default. */
  clock?: Clock;
  /** Starts Firecracker detached when it runs without the jailer; node's spawn by default. */
  spawnDetached?: (argv: string[]) => number;
}

export class HelperService {
  /** Runs the helper's short-lived children (ip, debootstrap, mkfs, cp); they die with the helper. */
  private readonly runner: ProcessRunner;
  /** Runs QEMU only: it daemonizes and must outlive a helper restart, so it gets no death signal. */
  private readonly qemuRunner: ProcessRunner;
  private readonly scope: HelperScope;
  private readonly firewall: GuestFirewall;
  /** Routes .vm to bangerd's DNS server through systemd-resolved (net.resolvedRoute, net.resolvedUnroute). */
  private readonly resolved: ResolvedRouting;
  /** vmm.launchFirecracker (firecracker-launch.ts). */
  private readonly firecracker: FirecrackerLauncher;

  /** `runner` starts processes as they are; the service adds the death signal where it belongs. */
  constructor(runner: ProcessRunner, scope: HelperScope, options: HelperServiceOptions = {}) {
    this.runner = new DiesWithParentRunner(runner);
    this.qemuRunner = runner;
    this.scope = scope;
    this.firewall = options.firewall ?? new ChosenFirewall({ runner: this.runner, bridge: scope.network.bridge, netns: scope.network.netns });
    this.resolved = new ResolvedRouting({ runner: this.runner, network: scope.network, checkBridge: (value) => this.bridge(value) });
    this.firecracker = new FirecrackerLauncher({
      owner: scope.owner, stateDir: scope.stateDir, cacheDir: scope.cacheDir, netnsDir: scope.netnsDir, procDir: scope.procDir, jailBase: scope.jailBase ?? FIRECRACKER_JAIL_BASE,
      netns: (value) => this.netns(value), refuseUnlessOwnersTap: (netns, tap) => this.refuseUnlessOwnersTap(netns, tap),
    }, { runner, clock: options.clock ?? systemClock, ...(options.spawnDetached ? { spawnDetached: options.spawnDetached } : {}) });
  }

  /** A file in one of `roots` (real paths of the owner's banger directories), named plainly: see owned-path.ts. */
  insidePath(value: unknown, roots: readonly string[], what: string, mustExist: boolean): string {
    return ownedPath(value, { roots, what, mustExist, owner: this.scope.owner });
  }

  /** Refuses any bridge, gateway or namespace other than the ones this helper was started for. */
  private outOfScope(what: string, got: string | null, want: string | null): never {
    throw new BangerError('HELPER_REFUSED', `bangerd-root refused: it manages ${what} ${want ?? '(none: the host namespace)'}, not ${got ?? '(none: the host namespace)'}`, {
      hint: 'bangerd-root keeps the network settings it was started with; restart both with the current ones: banger daemon stop && banger daemon start',
    });
  }

  private bridge(value: unknown): string {
    const bridge = matching(value, NAME_PATTERN, 'bridge name');
    if (bridge !== this.scope.network.bridge) this.outOfScope('bridge', bridge, this.scope.network.bridge);
    return bridge;
  }

  /** The namespace named in a request, which must be the helper's own (null: the host's). */
  private netnsName(value: unknown): string | null {
    const name = value === null || value === undefined ? null : matching(value, NETNS_PATTERN, 'network namespace');
    if (name !== this.scope.network.netns) this.outOfScope('network namespace', name, this.scope.network.netns);
    return name;
  }

  private netns(value: unknown): string | null {
    const name = this.netnsName(value);
    if (name === null) return null;
    if (!fs.existsSync(path.join(this.scope.netnsDir, name))) {
      throw new BangerError('NETWORK_FAILED', `network namespace ${name} does not exist`, { hint: `create it first: ip netns add ${name}` });
    }
    return name;
  }

  /** `ip` inside the namespace when one is given. */
  private ip(netns: string | null, args: string[]): string[] {
    return ipArgs(netns, args);
  }

  private tapScope(): TapScope {
    return { runner: this.runner, ownerUid: this.scope.owner.uid, bridge: this.scope.network.bridge, procDir: this.scope.procDir };
  }

  /** A guest's address: inside the helper's subnet, neither its network, gateway (the host) nor broadcast address. */
  private guestIp(value: unknown): string {
    const ip = matching(value, IPV4_PATTERN, 'guest address');
    const prefix = this.scope.network.subnet.split('.').slice(0, 3).join('.');
    const host = Number(ip.split('.')[3]);
    if (!ip.startsWith(`${prefix}.`) || host < 2 || host > 254) {
      refuse(`guest address ${ip} is not a guest address in ${this.scope.network.subnet}, the subnet this bangerd-root manages`);
    }
    return ip;
  }

  private async linkExists(netns: string | null, name: string): Promise<boolean> {
    const r = await this.runner.run('ip', this.ip(netns, ['link', 'show', 'dev', name]));
    return r.code === 0;
  }

  async ensureBridge(raw: BridgeParams): Promise<void> {
    const bridge = this.bridge(raw.bridge);
    const cidr = matching(raw.gatewayCidr, CIDR_PATTERN, 'gateway address');
    const m = CIDR_PATTERN.exec(cidr)!;
    if (m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) < 8 || Number(m[5]) > 30) refuse(`gateway address ${cidr} is not valid`);
    const gateway = gatewayCidrOf(this.scope.network.subnet);
    if (cidr !== gateway) this.outOfScope('gateway', cidr, gateway);
    const netns = this.netns(raw.netns);
    if (await this.linkExists(netns, bridge)) {
      // A name the host already uses for something else (an uplink, another tool's device) is not banger's to take over.
      const details = await runChecked(this.runner, 'ip', this.ip(netns, ['-j', '-d', 'link', 'show', 'dev', bridge]));
      const kind = (JSON.parse(details.stdout) as Array<{ linkinfo?: { info_kind?: string } }>)[0]?.linkinfo?.info_kind;
      if (kind !== 'bridge') {
        throw new BangerError('NETWORK_FAILED', `${bridge} exists${netns ? ` in netns ${netns}` : ''} and is not a bridge (${kind ?? 'a plain device'})`, {
          hint: 'pick another name with network.bridge in config.toml, then restart: banger daemon stop && banger daemon start',
        });
      }
    } else {
      const r = await this.runner.run('ip', this.ip(netns, ['link', 'add', 'name', bridge, 'type', 'bridge']));
      // Two VMs starting at once may both try; losing that race is fine.
      if (r.code !== 0 && !(await this.linkExists(netns, bridge))) throw new BangerError('NETWORK_FAILED', `cannot create bridge ${bridge}: ${r.stderr.trim()}`);
    }
    const addrs = await runChecked(this.runner, 'ip', this.ip(netns, ['-j', 'addr', 'show', 'dev', bridge]));
    const info = JSON.parse(addrs.stdout) as Array<{ addr_info?: Array<{ local: string; prefixlen: number }> }>;
    const [address, prefix] = cidr.split('/');
    if (!info[0]?.addr_info?.some((a) => a.local === address && a.prefixlen === Number(prefix))) {
      const r = await this.runner.run('ip', this.ip(netns, ['addr', 'add', cidr, 'dev', bridge]));
      if (r.code !== 0 && !/File exists/.test(r.stderr)) throw new BangerError('NETWORK_FAILED', `cannot address bridge ${bridge}: ${r.stderr.trim()}`);
    }
    await runChecked(this.runner, 'ip', this.ip(netns, ['link', 'set', 'dev', bridge, 'up']));
    if (netns) await runChecked(this.runner, 'ip', this.ip(netns, ['link', 'set', 'dev', 'lo', 'up']));
    // Before any guest boots: without NAT a guest reaches the host and its bridge, even where the host routes.
    await this.firewall.isolate();
  }

  async natEnable(raw: NatParams): Promise<void> {
    const ip = this.guestIp(raw.ip);
    this.bridge(raw.bridge);
    this.netns(raw.netns);
    await this.firewall.enableNat(ip);
  }

  async natDisable(raw: NatParams): Promise<void> {
    const ip = this.guestIp(raw.ip);
    this.bridge(raw.bridge);
    // A namespace that is gone took its rules with it; stopping or deleting a VM must still work then.
    const netns = this.netnsName(raw.netns);
    if (netns !== null && !fs.existsSync(path.join(this.scope.netnsDir, netns))) return;
    await this.firewall.disableNat(ip);
  }

  async natList(raw: NatListParams): Promise<{ ips: string[] }> {
    this.bridge(raw.bridge);
    const netns = this.netnsName(raw.netns);
    if (netns !== null && !fs.existsSync(path.join(this.scope.netnsDir, netns))) return { ips: [] };
    return { ips: await this.firewall.natAddresses() };
  }

  async createTap(raw: TapParams): Promise<void> {
    const tap = matching(raw.tap, TAP_PATTERN, 'tap name');
    const bridge = this.bridge(raw.bridge);
    const netns = this.netns(raw.netns);
    if (await this.linkExists(netns, tap)) {
      await refuseIfNotOwnersTap(this.tapScope(), netns, tap);
      refuseIfTapInUse(this.tapScope(), tap);
      await this.runner.run('ip', this.ip(netns, ['link', 'del', 'dev', tap]));
    }
    const { uid, gid } = this.scope.owner;
    const add = await this.runner.run('ip', this.ip(netns, ['tuntap', 'add', 'dev', tap, 'mode', 'tap', 'user', String(uid), 'group', String(gid)]));
    if (add.code !== 0) throw new BangerError('NETWORK_FAILED', `cannot create tap ${tap}: ${add.stderr.trim()}`);
    try {
      await runChecked(this.runner, 'ip', this.ip(netns, ['link', 'set', 'dev', tap, 'master', bridge, 'up']));
    } catch (err) {
      await this.runner.run('ip', this.ip(netns, ['link', 'del', 'dev', tap]));
      throw new BangerError('NETWORK_FAILED', `cannot attach tap ${tap} to bridge ${bridge}`, { cause: err });
    }
  }

  async deleteTap(raw: DeleteTapParams): Promise<void> {
    const tap = matching(raw.tap, TAP_PATTERN, 'tap name');
    // A namespace that is gone took its taps with it; deleting a VM must still work then.
    const netns = this.netnsName(raw.netns);
    if (netns !== null && !fs.existsSync(path.join(this.scope.netnsDir, netns))) return;
    if (!(await this.linkExists(netns, tap))) return;
    await refuseIfNotOwnersTap(this.tapScope(), netns, tap);
    refuseIfTapInUse(this.tapScope(), tap);
    await runChecked(this.runner, 'ip', this.ip(netns, ['link', 'del', 'dev', tap]));
  }

  /**
   * Checks what the spec's values may be. Its shape (accel and disk formats from a fixed set, disks a list) is
   * launchQemuParamsSchema's, which the vmm.launchQemu handler applies first.
   */
  validateLaunchSpec(raw: QemuLaunchSpec): QemuLaunchSpec {
    const roots = [this.scope.stateDir, this.scope.cacheDir];
    const vmId = matching(raw.vmId, VM_ID_PATTERN, 'vm id');
    refuseUnknownVm(this.scope.stateDir, this.scope.owner, vmId);
    if (raw.disks.length > 8) refuse('disks must be a list of at most 8');
    const cmdline = str(raw.cmdline, 'kernel command line');
    if (!/^[a-zA-Z0-9_.=,: /-]{0,1024}$/.test(cmdline)) refuse('kernel command line has characters outside [a-zA-Z0-9_.=,: /-]');
    return {
      vmId,
      accel: raw.accel,
      vcpus: int(raw.vcpus, 1, 64, 'vcpus'),
      memoryMib: int(raw.memoryMib, 64, 1024 * 1024, 'memory'),
      kernelPath: this.insidePath(raw.kernelPath, roots, 'kernel', true),
      initrdPath: this.insidePath(raw.initrdPath, roots, 'initrd', true),
      cmdline,
      disks: raw.disks.map((d, i) => ({
        id: matching(d.id, /^[a-z][a-z0-9]{0,15}$/, `disk ${i} id`),
        path: this.insidePath(d.path, roots, `disk ${i}`, true),
        format: d.format,
      })),
      net: raw.net === null ? null : { tap: matching(raw.net.tap, TAP_PATTERN, 'tap name'), mac: matching(raw.net.mac, MAC_PATTERN, 'mac address') },
      qmpSocket: this.insidePath(raw.qmpSocket, [this.scope.stateDir, this.scope.runDir], 'qmp socket', false),
      agentSocket: this.insidePath(raw.agentSocket, [this.scope.stateDir, this.scope.runDir], 'agent socket', false),
      serialLog: this.insidePath(raw.serialLog, [this.scope.stateDir], 'serial log', false),
      pidFile: this.insidePath(raw.pidFile, [this.scope.stateDir, this.scope.runDir], 'pid file', false),
    };
  }

  /** The tap a VM gets must be one createTap made: the owner's, on this helper's bridge (or none yet). */
  private async refuseUnlessOwnersTap(netns: string | null, tap: string): Promise<void> {
    if (!(await this.linkExists(netns, tap))) refuse(`tap ${tap} does not exist${netns ? ` in netns ${netns}` : ''}; banger creates a VM's tap before launching it`);
    await refuseIfNotOwnersTap(this.tapScope(), netns, tap);
  }

  /** Resolves the QEMU binary: a qemu-system-* program on PATH or at an absolute path, that only root can change. */
  resolveQemu(value: unknown): string {
    const name = matching(value, /^[a-zA-Z0-9_./-]{1,200}$/, 'qemu binary');
    if (!path.basename(name).startsWith('qemu-system-')) refuse(`qemu binary ${name} must be a qemu-system-* program`);
    return trustedProgram(findExecutable(name), 'qemu binary');
  }

  async launchQemu(raw: LaunchQemuParams, ctx: Pick<CallContext, 'signal'>): Promise<{ pid: number }> {
    const qemu = this.resolveQemu(raw.qemu);
    const spec = this.validateLaunchSpec(raw.spec);
    const netns = this.netns(raw.netns);
    if (spec.net) await this.refuseUnlessOwnersTap(netns, spec.net.tap);
    // QEMU runs as the owner, never as root; only entering the namespace needs root.
    let argv = [...ownerArgv(this.scope.owner), qemu, ...buildQemuArgv(spec)];
    if (netns) argv = ['ip', 'netns', 'exec', netns, ...argv];
    // The VM directory is the owner's: root touches nothing there itself. QEMU opens these files by name and
    // follows symlinks, so it must find a fresh serial log, and no pid file or socket left from the last boot.
    asOwner(this.scope.owner, () => {
      removeStale(spec.pidFile);
      removeStale(spec.qmpSocket);
      removeStale(spec.agentSocket);
      createFresh(spec.serialLog, 'serial log');
    });
    // -daemonize: the first process exits once the VM is set up, so errors in the set-up come back here. The
    // VM itself is a grandchild that no death signal reaches, so it survives a restart of the helper.
    const result = await this.qemuRunner.run(argv[0]!, argv.slice(1), { signal: ctx.signal, timeoutMs: 60_000 });
    if (result.code !== 0) {
      throw new BangerError('VMM_FAILED', `QEMU did not start: ${result.stderr.trim().split('\n').slice(-3).join(' ') || `exit ${result.code}`}`, {
        hint: 'check that qemu-system-x86 is installed (apt-get install qemu-system-x86 qemu-utils)',
      });
    }
    const pid = readPidFile(spec.pidFile, this.scope.owner);
    return { pid: checkedQemuPid({ procDir: this.scope.procDir, owner: this.scope.owner, vmId: spec.vmId, pid }) };
  }

  async buildImage(raw: BuildImageParams, ctx: CallContext): Promise<{ sizeBytes: number }> {
    const name = str(raw.name, 'image name');
    const recipe = DEFAULT_IMAGES.get(name);
    if (!recipe) refuse(`no built-in recipe for image ${name}`);
    const mirror = matching(raw.mirror, /^https?:\/\/[a-zA-Z0-9._~:/?#@!$&*+;=%-]+$/, 'mirror');
    const output = this.insidePath(raw.output, [this.scope.cacheDir], 'image output', false);
    return buildDebianImage({ runner: this.runner, recipe, mirror, output, owner: this.scope.owner, signal: ctx.signal, progress: ctx.progress });
  }

  /**
   * Makes an image from layers in the owner's blob cache. The blobs are opened without following links and
   * hashed again while applied, so a blob swapped after bangerd verified it fails here.
   */
  async importImageLayers(raw: ImportLayersParams, ctx: CallContext): Promise<ImportLayersResult> {
    if (raw.layers.length === 0 || raw.layers.length > 512) refuse('layers must be a list of 1 to 512');
    const layers = raw.layers.map((l, i) => ({
      path: this.insidePath(l.path, [this.scope.cacheDir], `layer ${i}`, true),
      digest: matching(l.digest, DIGEST_PATTERN, `layer ${i} digest`),
      diffId: l.diffId === null ? null : matching(l.diffId, DIGEST_PATTERN, `layer ${i} diff_id`),
      mediaType: matching(l.mediaType, /^[a-z0-9.+\/-]{1,128}$/, `layer ${i} media type`),
    }));
    const output = this.insidePath(raw.output, [this.scope.cacheDir], 'image output', false);
    const minSizeBytes = int(raw.minSizeBytes, 0, 2 * 1024 ** 4, 'minimum size');
    const user = raw.user === null ? null : matching(raw.user, /^[A-Za-z0-9_.-]{1,64}(:[A-Za-z0-9_.-]{1,64})?$/, 'image user');
    return importLayers({ runner: this.runner, owner: this.scope.owner, layers, output, minSizeBytes, user, devices: raw.devices, signal: ctx.signal, progress: ctx.progress });
  }

  handlers(onShutdown: () => void): Map<string, Handler> {
    const h = new Map<string, Handler>();
    // Every request's params are parsed with its strict schema before any work (see refuseInvalid).
    h.set('helper.ping', async (p) => {
      refuseInvalid(emptyParamsSchema, 'helper.ping', p);
      return { pid: process.pid, version: VERSION, network: this.scope.network };
    });
    h.set('net.ensureBridge', async (p) => this.ensureBridge(refuseInvalid(bridgeParamsSchema, 'net.ensureBridge', p)));
    h.set('net.createTap', async (p) => this.createTap(refuseInvalid(tapParamsSchema, 'net.createTap', p)));
    h.set('net.deleteTap', async (p) => this.deleteTap(refuseInvalid(deleteTapParamsSchema, 'net.deleteTap', p)));
    h.set('net.natEnable', async (p) => this.natEnable(refuseInvalid(natParamsSchema, 'net.natEnable', p)));
    h.set('net.natDisable', async (p) => this.natDisable(refuseInvalid(natParamsSchema, 'net.natDisable', p)));
    h.set('net.natList', async (p) => this.natList(refuseInvalid(natListParamsSchema, 'net.natList', p)));
    h.set('vmm.launchQemu', async (p, ctx) => this.launchQemu(refuseInvalid(launchQemuParamsSchema, 'vmm.launchQemu', p), ctx));
    h.set('vmm.launchFirecracker', async (p, ctx) => this.firecracker.launch(refuseInvalid(launchFirecrackerParamsSchema, 'vmm.launchFirecracker', p), ctx));
    h.set('image.build', async (p, ctx) => this.buildImage(refuseInvalid(buildImageParamsSchema, 'image.build', p), ctx));
    h.set('image.importLayers', async (p, ctx) => this.importImageLayers(refuseInvalid(importLayersParamsSchema, 'image.importLayers', p), ctx));
    h.set('net.resolvedRoute', async (p) => this.resolved.route(refuseInvalid(resolvedRouteParamsSchema, 'net.resolvedRoute', p)));
    h.set('net.resolvedUnroute', async (p) => this.resolved.unroute(refuseInvalid(resolvedUnrouteParamsSchema, 'net.resolvedUnroute', p)));
    h.set('helper.shutdown', async (p) => {
      refuseInvalid(emptyParamsSchema, 'helper.shutdown', p);
      setImmediate(onShutdown);
      return { ok: true };
    });
    return h;
  }
}
