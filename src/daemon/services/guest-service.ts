// What bangerd asks a running guest through its agent: health, listening ports, resource use, and forwards.
import fs from 'node:fs';
import type { ForwardInfo, VmHealthResult, VmInfo, VmPortsResult, VmStatsResult } from '../../protocol/methods.ts';
import { AGENT_VERSION } from '../../system/guest-contract.ts';
import { isOlderVersion } from '../../protocol/versions.ts';
import type { AgentService } from './agent-service.ts';
import { guestDuplex } from './agent-pipe.ts';
import type { ForwardService } from './forward-service.ts';
import { notRunningError } from './vm-errors.ts';
import { connectHostFor, endpointFor, mergeListeners, parseAgentSockets, probeListener } from './guest-ports.ts';

export interface GuestServiceDeps {
  agents: Pick<AgentService, 'request' | 'require'>;
  forwards: Pick<ForwardService, 'add' | 'remove' | 'list'>;
  /** The VM by name or id, refreshed (a dead VMM shows as stopped). */
  show(ref: string): VmInfo;
  /** The /proc to read the VMM's memory from (tests pass a fake tree). */
  procRoot?: string;
}

export class GuestService {
  private readonly deps: GuestServiceDeps;

  constructor(deps: GuestServiceDeps) {
    this.deps = deps;
  }

  async health(ref: string): Promise<VmHealthResult> {
    const vm = this.running(ref, 'vm health');
    const r = await this.deps.agents.request<Record<string, unknown>>(vm, 'health', {});
    const agentVersion = String(r.agentVersion ?? vm.agentVersion ?? 'unknown');
    return {
      vm: vm.name, systemState: String(r.systemState ?? 'unknown'), uptimeSec: num(r.uptimeSec), agentVersion,
      agentOutdated: isOlderVersion(agentVersion, AGENT_VERSION),
    };
  }

  async ports(ref: string, signal?: AbortSignal): Promise<VmPortsResult> {
    const vm = this.running(ref, 'vm ports');
    const raw = await this.deps.agents.request<unknown>(vm, 'ports', {}, signal ? { signal } : {});
    const forwards = this.deps.forwards.list(vm.id);
    const rows = mergeListeners(vm.name, parseAgentSockets(raw), forwards);
    const client = await this.deps.agents.require(vm, signal);
    await Promise.all(rows.filter((r) => r.proto === 'tcp').map(async (row) => {
      const host = connectHostFor(row.addresses);
      row.kind = await probeListener(() => guestDuplex(client, { host, port: row.port }), `${vm.name}.vm`);
      row.endpoint = endpointFor(vm.name, row.kind, row.port);
    }));
    return { vm: vm.name, ports: rows, forwards };
  }

  async stats(ref: string): Promise<VmStatsResult> {
    const vm = this.running(ref, 'vm stats');
    const r = await this.deps.agents.request<Record<string, unknown>>(vm, 'stats', { sampleMs: 250 });
    const disks = Array.isArray(r.disks) ? r.disks : [];
    return {
      vm: vm.name,
      cpus: num(r.cpus),
      cpuPercent: Math.min(100, Math.max(0, num(r.cpuPercent))),
      memTotalBytes: num(r.memTotalBytes),
      memUsedBytes: num(r.memUsedBytes),
      disks: disks.slice(0, 16).map((d: Record<string, unknown>) => ({ mount: String(d.mount ?? '?'), totalBytes: num(d.totalBytes), usedBytes: num(d.usedBytes) })),
      uptimeSec: num(r.uptimeSec),
      vmmRssBytes: this.vmmRss(vm.pid),
      agentVersion: vm.agentVersion ?? 'unknown',
    };
  }

  forward(ref: string, guestPort: number, hostPort?: number): Promise<ForwardInfo> {
    return this.deps.forwards.add(this.running(ref, 'vm forward'), guestPort, hostPort);
  }

  unforward(ref: string, hostPort: number): ForwardInfo {
    return this.deps.forwards.remove(this.deps.show(ref), hostPort);
  }

  private running(ref: string, what: string): VmInfo {
    const vm = this.deps.show(ref);
    if (vm.state !== 'running') {
      throw notRunningError(vm, what);
    }
    return vm;
  }

  private vmmRss(pid: number | null): number | null {
    if (!pid) return null;
    try {
      const status = fs.readFileSync(`${this.deps.procRoot ?? '/proc'}/${pid}/status`, 'utf8');
      const kb = /^VmRSS:\s+(\d+) kB/m.exec(status);
      return kb ? Number(kb[1]) * 1024 : null;
    } catch {
      return null;
    }
  }
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}
