// bangerd's half of `banger doctor`: what only the running daemon knows. The accelerator it decided on, the helper
// it talks to and the network that helper made, the NAT rules of running VMs, the .vm DNS server, the guest
// agents' versions, and where the default image comes from. The CLI adds the host's side (src/cli/doctor-host.ts).
import type { DoctorCheck } from '../../protocol/doctor.ts';
import { messageOf } from '../../protocol/errors.ts';
import type { PrivilegedOps } from '../../protocol/privileged-ops.ts';
import { isOlderVersion } from '../../protocol/versions.ts';
import type { BangerConfig } from '../../system/config.ts';
import { AGENT_VERSION } from '../../system/guest-contract.ts';
import type { ProcessRunner } from '../../system/process.ts';
import type { VmmDriver } from '../../vmm/driver.ts';
import { VERSION } from '../../version.ts';
import type { ImageService } from './image-service.ts';
import type { KernelService } from './kernel-service.ts';
import type { VmService } from './vm-service.ts';

export interface DoctorServiceDeps {
  config: BangerConfig;
  ops: PrivilegedOps;
  runner: ProcessRunner;
  driver: Pick<VmmDriver, 'knownAccel'>;
  kernels: Pick<KernelService, 'hostDefault'>;
  images: Pick<ImageService, 'origin'>;
  vms: Pick<VmService, 'list'>;
  /** The .vm DNS server as `daemon status` reports it. */
  dns: () => { listening: boolean; address: string | null; error: string | null };
}

const RESTART = 'banger daemon stop && banger daemon start';

export class DoctorService {
  private readonly deps: DoctorServiceDeps;

  constructor(deps: DoctorServiceDeps) {
    this.deps = deps;
  }

  async checks(): Promise<DoctorCheck[]> {
    return [this.accel(), ...(await this.helperAndNetwork()), this.dns(), ...this.agents(), await this.defaultImage()];
  }

  private accel(): DoctorCheck {
    const redecide = 'decided afresh with --fresh-accel on vm create, vm start or vm run';
    let version: string;
    let kernel;
    try {
      ({ version, kernel } = this.deps.kernels.hostDefault());
    } catch (err) {
      return { id: 'vmm.accel', status: 'fail', summary: `no guest kernel: ${messageOf(err)}`, fix: 'apt-get install linux-image-amd64' };
    }
    const choice = kernel ? this.deps.driver.knownAccel(kernel) : null;
    if (!choice) return { id: 'vmm.accel', status: 'ok', summary: `accelerator: not decided yet for kernel ${version} (the next VM decides: a KVM probe when /dev/kvm exists)` };
    return { id: 'vmm.accel', status: 'ok', summary: `accelerator: ${choice.vmm ?? 'qemu'}/${choice.accel} (${choice.reason}); ${redecide}` };
  }

  private async helperAndNetwork(): Promise<DoctorCheck[]> {
    const { network } = this.deps.config;
    let pong;
    try {
      pong = await this.deps.ops.ping();
    } catch (err) {
      return [{ id: 'helper', status: 'fail', summary: `bangerd-root does not answer: ${messageOf(err)}`, fix: 'banger daemon start (as root)' }];
    }
    const rows: DoctorCheck[] = [];
    const want = `bridge ${network.bridge}, subnet ${network.subnet}, ${network.netns ? `netns ${network.netns}` : 'host netns'}`;
    const has = `bridge ${pong.network.bridge}, subnet ${pong.network.subnet}, ${pong.network.netns ? `netns ${pong.network.netns}` : 'host netns'}`;
    if (want !== has) {
      rows.push({ id: 'helper', status: 'fail', summary: `bangerd-root (pid ${pong.pid}) serves ${has}, but the config asks for ${want}`, fix: RESTART });
    } else if (pong.version !== VERSION) {
      rows.push({ id: 'helper', status: 'warn', summary: `bangerd-root (pid ${pong.pid}) is version ${pong.version}, bangerd ${VERSION}`, fix: RESTART });
    } else rows.push({ id: 'helper', status: 'ok', summary: `bangerd-root: pid ${pong.pid}, ${has}` });

    const running = this.deps.vms.list().filter((vm) => vm.state === 'running');
    const netnsArgs = network.netns ? ['-n', network.netns] : [];
    const link = await this.deps.runner.run('ip', [...netnsArgs, '-j', 'link', 'show', 'dev', network.bridge]).catch((err: unknown) => ({ code: 1, stderr: messageOf(err), stdout: '' }));
    if (link.code === 0) rows.push({ id: 'network.bridge', status: 'ok', summary: `bridge ${network.bridge} is up for ${running.length} running VM(s)` });
    else if (running.length === 0) rows.push({ id: 'network.bridge', status: 'ok', summary: `bridge ${network.bridge}: made with the first VM` });
    else rows.push({ id: 'network.bridge', status: 'fail', summary: `bridge ${network.bridge} is missing while ${running.length} VM(s) run`, fix: RESTART });

    const withNat = running.filter((vm) => vm.nat);
    try {
      const { ips } = await this.deps.ops.natList({ bridge: network.bridge, netns: network.netns });
      const missing = withNat.filter((vm) => !ips.includes(vm.ip)).map((vm) => vm.name);
      const stray = ips.filter((ip) => !withNat.some((vm) => vm.ip === ip));
      if (missing.length === 0 && stray.length === 0) rows.push({ id: 'network.nat', status: 'ok', summary: `NAT rules: ${withNat.length} running VM(s) with --nat, all in place` });
      else {
        const what = [missing.length ? `missing for ${missing.join(', ')}` : '', stray.length ? `left for ${stray.join(', ')} (no running VM with --nat)` : ''].filter(Boolean).join('; ');
        rows.push({ id: 'network.nat', status: 'warn', summary: `NAT rules ${what}`, fix: `${RESTART} (bangerd puts them right when it starts)` });
      }
    } catch (err) {
      rows.push({ id: 'network.nat', status: 'warn', summary: `NAT rules could not be listed: ${messageOf(err)}`, fix: RESTART });
    }
    return rows;
  }

  private dns(): DoctorCheck {
    const dns = this.deps.dns();
    if (dns.listening) return { id: 'dns', status: 'ok', summary: `.vm DNS on ${dns.address}` };
    if (this.deps.config.dns.port === 0) return { id: 'dns', status: 'ok', summary: '.vm DNS turned off ([dns] port = 0); ssh NAME.vm works through banger ssh-config' };
    return { id: 'dns', status: 'warn', summary: `.vm DNS is not running: ${dns.error ?? 'unknown reason'}`, fix: `free port ${this.deps.config.dns.port} or set [dns] port in config.toml, then: ${RESTART}` };
  }

  private agents(): DoctorCheck[] {
    const running = this.deps.vms.list().filter((vm) => vm.state === 'running');
    const old = running.filter((vm) => vm.agentVersion !== undefined && isOlderVersion(vm.agentVersion, AGENT_VERSION));
    if (old.length === 0) return [{ id: 'vms.agent', status: 'ok', summary: `guest agents: ${running.length} running VM(s), none older than ${AGENT_VERSION}` }];
    return old.map((vm) => ({
      id: 'vms.agent', status: 'warn' as const,
      summary: `vm ${vm.name} runs guest agent ${vm.agentVersion}, older than ${AGENT_VERSION}; it keeps working without what is newer`,
      fix: 'a new VM gets the new agent (vm run / vm create); this one keeps its own',
    }));
  }

  private async defaultImage(): Promise<DoctorCheck> {
    const name = this.deps.config.vmDefaults.image;
    const origin = await this.deps.images.origin(name);
    if (origin.from === 'nowhere') {
      return { id: 'image.default', status: 'fail', summary: `default image ${name}: ${origin.detail}`, fix: 'banger image pull REF, or set [vm_defaults] image in config.toml' };
    }
    return { id: 'image.default', status: 'ok', summary: `default image ${name}: ${origin.from === 'local' ? 'here' : origin.from}, ${origin.detail}` };
  }
}
