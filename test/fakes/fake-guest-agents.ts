// GuestAgents for VmService tests: every wait succeeds at once unless `failWith` is set; waits and disconnects
// are recorded so tests can check that a boot waited for the agent and a stop let go of it.
import type { GuestAgents } from '../../src/daemon/services/agent-service.ts';
import type { VmInfo } from '../../src/protocol/methods.ts';

export class FakeGuestAgents implements GuestAgents {
  readonly waits: Array<{ vm: string; timeoutSec: number }> = [];
  readonly disconnects: string[] = [];
  failWith: Error | null = null;
  readonly syncs: string[] = [];
  /** What sync answers: false makes VmService sync over ssh instead. */
  syncWorks = true;

  async waitReady(vm: VmInfo, timeoutSec: number): Promise<void> {
    this.waits.push({ vm: vm.name, timeoutSec });
    if (this.failWith) throw this.failWith;
  }

  async sync(vm: VmInfo): Promise<boolean> {
    this.syncs.push(vm.name);
    return this.syncWorks;
  }

  disconnect(vmId: string): void {
    this.disconnects.push(vmId);
  }
}
