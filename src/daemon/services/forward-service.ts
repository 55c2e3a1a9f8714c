// `vm forward`: a host loopback port served by a guest TCP port for as long as the VM runs. Each accepted
// connection becomes a connection the guest agent opens inside the guest, so forwards work wherever the guest's
// network lives. Forwards are kept in the store: a daemon restart listens again for VMs still running, and a VM
// that stops takes its forwards with it.
import net from 'node:net';
import { BangerError, messageOf } from '../../protocol/errors.ts';
import type { ForwardInfo, VmInfo } from '../../protocol/methods.ts';
import type { Store } from '../../store/store.ts';
import { isoNow, type Clock } from '../../system/clock.ts';
import type { AgentService } from './agent-service.ts';
import { pipeToGuest } from './agent-pipe.ts';
import { notRunningError } from './vm-errors.ts';

export interface ForwardServiceDeps {
  store: Store;
  clock: Clock;
  agents: Pick<AgentService, 'require'>;
  /** The VM as it is now (its row can change while a forward runs). */
  vm(id: string): VmInfo | null;
  log(message: string): void;
  /** The address forwards listen on; loopback only, so nothing beyond this host reaches a guest this way. */
  host?: string;
}

export class ForwardService {
  private readonly deps: ForwardServiceDeps;
  private readonly servers = new Map<number, net.Server>();

  constructor(deps: ForwardServiceDeps) {
    this.deps = deps;
  }

  /** Serves `hostPort` (or a free port) on loopback; the VM must be running. */
  async add(vm: VmInfo, guestPort: number, hostPort?: number): Promise<ForwardInfo> {
    if (vm.state !== 'running') {
      throw notRunningError(vm, 'a forward');
    }
    if (hostPort !== undefined && this.deps.store.listForwards().some((f) => f.hostPort === hostPort)) {
      const owner = this.deps.store.listForwards().find((f) => f.hostPort === hostPort)!;
      throw new BangerError('INVALID_ARGUMENT', `host port ${hostPort} is already forwarded (to port ${owner.guestPort} of ${this.deps.vm(owner.vmId)?.name ?? owner.vmId})`, {
        hint: `pick another host port, or remove that forward: banger vm forward ${this.deps.vm(owner.vmId)?.name ?? owner.vmId} --remove ${hostPort}`,
      });
    }
    const server = await this.listen(vm.id, guestPort, hostPort ?? 0);
    const port = (server.address() as net.AddressInfo).port;
    const forward: ForwardInfo = { hostPort: port, vmId: vm.id, guestPort, createdAt: isoNow(this.deps.clock) };
    if (!this.deps.store.insertForward(forward)) {
      server.close();
      throw new BangerError('INVALID_ARGUMENT', `host port ${port} is already forwarded`, { hint: 'pick another host port' });
    }
    this.servers.set(port, server);
    this.deps.log(`vm ${vm.name}: forwarding 127.0.0.1:${port} to guest port ${guestPort}`);
    return forward;
  }

  /** Stops serving one host port of `vm`. */
  remove(vm: VmInfo, hostPort: number): ForwardInfo {
    const forward = this.deps.store.listForwards(vm.id).find((f) => f.hostPort === hostPort);
    if (!forward) {
      throw new BangerError('INVALID_ARGUMENT', `VM ${vm.name} has no forward from host port ${hostPort}`, { hint: `see its forwards: banger vm ports ${vm.name}` });
    }
    this.close(hostPort);
    this.deps.store.deleteForward(hostPort);
    return forward;
  }

  /** Every forward of a VM that stopped or is deleted. */
  dropAll(vmId: string): void {
    for (const f of this.deps.store.listForwards(vmId)) {
      this.close(f.hostPort);
      this.deps.store.deleteForward(f.hostPort);
    }
  }

  list(vmId: string): ForwardInfo[] {
    return this.deps.store.listForwards(vmId);
  }

  /** At daemon start: listen again for running VMs; forget the forwards of VMs that are not running. */
  async restore(): Promise<void> {
    for (const f of this.deps.store.listForwards()) {
      const vm = this.deps.vm(f.vmId);
      if (!vm || vm.state !== 'running') {
        this.deps.store.deleteForward(f.hostPort);
        continue;
      }
      try {
        this.servers.set(f.hostPort, await this.listen(vm.id, f.guestPort, f.hostPort));
      } catch (err) {
        this.deps.log(`vm ${vm.name}: cannot serve its forward from 127.0.0.1:${f.hostPort} again (${messageOf(err)}); dropping it`);
        this.deps.store.deleteForward(f.hostPort);
      }
    }
  }

  closeAll(): void {
    for (const port of [...this.servers.keys()]) this.close(port);
  }

  private close(hostPort: number): void {
    this.servers.get(hostPort)?.close();
    this.servers.delete(hostPort);
  }

  private listen(vmId: string, guestPort: number, hostPort: number): Promise<net.Server> {
    const server = net.createServer((socket) => void this.serve(vmId, guestPort, socket));
    return new Promise((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(err.code === 'EADDRINUSE'
          ? new BangerError('INVALID_ARGUMENT', `host port ${hostPort} is in use on ${this.deps.host ?? '127.0.0.1'}`, { hint: 'pick another host port, or leave it out to get a free one' })
          : err);
      });
      server.listen(hostPort, this.deps.host ?? '127.0.0.1', () => {
        server.removeAllListeners('error');
        server.on('error', (err) => this.deps.log(`forward 127.0.0.1:${hostPort}: ${messageOf(err)}`));
        resolve(server);
      });
    });
  }

  private async serve(vmId: string, guestPort: number, socket: net.Socket): Promise<void> {
    socket.on('error', () => undefined);
    const vm = this.deps.vm(vmId);
    if (!vm || vm.state !== 'running') {
      socket.resetAndDestroy();
      return;
    }
    try {
      const client = await this.deps.agents.require(vm);
      await pipeToGuest(client, socket, { host: '127.0.0.1', port: guestPort }, (m) => this.deps.log(`vm ${vm.name}: ${m}`));
    } catch (err) {
      this.deps.log(`vm ${vm.name}: forward to guest port ${guestPort}: ${messageOf(err)}`);
      socket.resetAndDestroy();
    }
  }
}
