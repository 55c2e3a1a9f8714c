// bangerd's connections to guest agents: one per running VM, opened when the VM boots (or on first use after
// a daemon restart), checked with a hello, and closed when the VM stops. Requests that need the agent fail with
// the VM's name and the `vm logs` command when it does not answer; lifecycle operations never wait on it.
import type { Duplex } from 'node:stream';
import { BangerError, messageOf } from '../../protocol/errors.ts';
import type { CallContext } from '../../protocol/jsonrpc.ts';
import type { VmInfo } from '../../protocol/methods.ts';
import type { Store } from '../../store/store.ts';
import type { Clock } from '../../system/clock.ts';
import { AGENT_VERSION } from '../../system/guest-contract.ts';
import { AgentClient, AgentError, AgentUnavailable, type AgentHello } from '../../vmm/agent-client.ts';
import { dialAgent, type AgentEndpoint } from '../../vmm/agent-dial.ts';

/** What VmService needs from the agents: a readiness wait at boot, and forgetting a VM that stopped. */
export interface GuestAgents {
  waitReady(vm: VmInfo, timeoutSec: number, ctx: CallContext, probes: { vmmAlive(): boolean; consoleTail(): string }): Promise<void>;
  disconnect(vmId: string): void;
  /** Flushes the guest's page cache through its agent; false (and a log line) when the agent could not. */
  sync(vm: VmInfo): Promise<boolean>;
}

export interface AgentServiceDeps {
  store: Store;
  clock: Clock;
  endpoint(vm: VmInfo): AgentEndpoint;
  /** Opens the byte stream to an endpoint (tests pass one that reaches an agent run with --stdio). */
  dial?: (endpoint: AgentEndpoint) => Promise<Duplex>;
  log(message: string): void;
}

/** How long a request that needs a running agent waits for its hello. */
const CONNECT_TIMEOUT_MS = 10_000;
const DIAL_RETRY_MS = 100;
/** A sync of a guest with a lot of dirty memory on a slow disk can take a while. */
const SYNC_TIMEOUT_MS = 30_000;

/** What exec keeps of each output stream. */
const EXEC_OUTPUT_CAP = 64 * 1024;

export class AgentService implements GuestAgents {
  private readonly deps: AgentServiceDeps;
  private readonly clients = new Map<string, Promise<AgentClient>>();

  constructor(deps: AgentServiceDeps) {
    this.deps = deps;
  }

  /**
   * Waits until the VM's agent says hello: dialling until the VMM serves the port, then saying hello until the
   * agent answers. Fails at once when the VMM dies, and after `timeoutSec` with the console's last lines.
   */
  async waitReady(vm: VmInfo, timeoutSec: number, ctx: CallContext, probes: { vmmAlive(): boolean; consoleTail(): string }): Promise<void> {
    ctx.progress({ stage: 'agent', message: `waiting for the guest agent in ${vm.name} (up to ${timeoutSec}s)` });
    this.disconnect(vm.id);
    const { clock } = this.deps;
    const deadline = clock.now() + timeoutSec * 1000;
    let lastError = 'no answer';
    while (clock.now() < deadline) {
      if (ctx.signal.aborted) throw new BangerError('CANCELLED', `cancelled while waiting for the guest agent in ${vm.name}`);
      if (!probes.vmmAlive()) {
        throw new BangerError('VMM_FAILED', `VM ${vm.name} stopped while booting:\n${probes.consoleTail()}`, { hint: `see the whole console: banger vm logs ${vm.name}` });
      }
      try {
        // Short attempts, so a VMM that dies meanwhile is noticed within about a second.
        await this.client(vm, Math.min(1500, Math.max(1, deadline - clock.now())), ctx.signal);
        return;
      } catch (err) {
        if (err instanceof BangerError && err.code === 'CANCELLED') throw err;
        lastError = messageOf(err);
        this.disconnect(vm.id);
        await clock.sleep(DIAL_RETRY_MS, ctx.signal);
      }
    }
    const why = lastError.startsWith('the guest agent did not answer') ? '' : ` (last: ${lastError})`;
    throw new BangerError('AGENT_UNAVAILABLE', `VM ${vm.name}: the guest agent did not answer within ${timeoutSec}s${why}; the VM is kept for inspection`, {
      hint: `see the guest's console: banger vm logs ${vm.name}; remove it: banger vm delete ${vm.name}`,
    });
  }

  /** The open connection to a VM's agent, connecting (and saying hello) when there is none. */
  client(vm: VmInfo, timeoutMs = CONNECT_TIMEOUT_MS, signal?: AbortSignal): Promise<AgentClient> {
    let pending = this.clients.get(vm.id);
    if (!pending) {
      pending = this.connect(vm, timeoutMs, signal);
      this.clients.set(vm.id, pending);
      pending.catch(() => {
        if (this.clients.get(vm.id) === pending) this.clients.delete(vm.id);
      });
    }
    return pending;
  }

  private async connect(vm: VmInfo, timeoutMs: number, signal?: AbortSignal): Promise<AgentClient> {
    const dial = this.deps.dial ?? dialAgent;
    let socket: Duplex;
    try {
      socket = await dial(this.deps.endpoint(vm));
    } catch (err) {
      throw new AgentUnavailable(`cannot reach the agent's port: ${messageOf(err)}`);
    }
    const client = new AgentClient(socket, { clock: this.deps.clock, log: this.deps.log });
    let hello: AgentHello;
    try {
      hello = await client.handshake(timeoutMs, signal);
    } catch (err) {
      client.close();
      throw err;
    }
    client.onClose((reason) => {
      this.deps.log(`vm ${vm.name}: agent connection closed (${reason})`);
      void this.clients.get(vm.id)?.then((c) => {
        if (c === client) this.clients.delete(vm.id);
      });
    });
    if (vm.agentVersion !== hello.agentVersion) this.deps.store.setAgentVersion(vm.id, hello.agentVersion);
    if (hello.agentVersion !== AGENT_VERSION) {
      this.deps.log(`vm ${vm.name}: its guest agent is ${hello.agentVersion}, this banger ships ${AGENT_VERSION}; it keeps working, and a new VM gets the new agent`);
    }
    return client;
  }

  disconnect(vmId: string): void {
    const pending = this.clients.get(vmId);
    this.clients.delete(vmId);
    void pending?.then((c) => c.close(), () => undefined);
  }

  async sync(vm: VmInfo): Promise<boolean> {
    try {
      await this.request(vm, 'sync', {}, { timeoutMs: SYNC_TIMEOUT_MS });
      return true;
    } catch (err) {
      this.deps.log(`vm ${vm.name}: guest sync through the agent failed (${messageOf(err)}); syncing over ssh`);
      return false;
    }
  }

  /** A running VM's agent, or AGENT_UNAVAILABLE naming the VM and where to look. */
  async require(vm: VmInfo, signal?: AbortSignal): Promise<AgentClient> {
    try {
      return await this.client(vm, CONNECT_TIMEOUT_MS, signal);
    } catch (err) {
      throw this.unavailable(vm, err);
    }
  }

  /** One request with one answer, its failures turned into BangerErrors that name the VM. */
  async request<T>(vm: VmInfo, t: string, fields: Record<string, unknown>, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<T> {
    const client = await this.require(vm, options.signal);
    try {
      return await client.request<T>(t, fields, { timeoutMs: options.timeoutMs ?? CONNECT_TIMEOUT_MS, ...(options.signal ? { signal: options.signal } : {}) });
    } catch (err) {
      if (err instanceof AgentError) {
        throw new BangerError('AGENT_FAILED', `VM ${vm.name}: the guest agent could not do ${t}: ${err.message} (${err.agentCode})`);
      }
      if (err instanceof AgentUnavailable) {
        // The connection may be wedged (a hung agent): the next request starts a fresh one.
        this.disconnect(vm.id);
        throw this.unavailable(vm, err);
      }
      throw err;
    }
  }

  /**
   * Runs one of banger's own scripts in the guest as root through the agent (for images without sshd), to its
   * end: no stdin, output kept up to 64 KiB a stream. The signal kills it.
   */
  async exec(vm: VmInfo, argv: string[], options: { signal?: AbortSignal } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const client = await this.require(vm, options.signal);
    const kept: Record<'stdout' | 'stderr', Buffer[]> = { stdout: [], stderr: [] };
    const sizes = { stdout: 0, stderr: 0 };
    const stream = client.open('exec', { argv, env: {}, cwd: '/', stdin: false, timeoutMs: 0 }, (frame) => {
      const ch = String(frame.header.ch);
      if (frame.header.t !== 'data' || (ch !== 'stdout' && ch !== 'stderr')) return;
      if (sizes[ch] < EXEC_OUTPUT_CAP) kept[ch].push(frame.payload);
      sizes[ch] += frame.payload.length;
      stream.ack(ch, frame.payload.length);
    });
    const kill = (): void => stream.control({ t: 'signal', signal: 'KILL' });
    options.signal?.addEventListener('abort', kill, { once: true });
    try {
      const h = await stream.done;
      return { code: typeof h.code === 'number' ? h.code : null, stdout: Buffer.concat(kept.stdout).toString(), stderr: Buffer.concat(kept.stderr).toString() };
    } catch (err) {
      if (err instanceof AgentError) throw new BangerError('AGENT_FAILED', `VM ${vm.name}: the guest agent could not run ${argv[0]}: ${err.message} (${err.agentCode})`);
      throw this.unavailable(vm, err);
    } finally {
      options.signal?.removeEventListener('abort', kill);
    }
  }

  unavailable(vm: VmInfo, err: unknown): BangerError {
    if (err instanceof BangerError) return err;
    return new BangerError('AGENT_UNAVAILABLE', `VM ${vm.name}: the guest agent is not answering (${messageOf(err)})`, {
      hint: `see the guest's console: banger vm logs ${vm.name}; restarting the VM restarts its agent: banger vm restart ${vm.name}`,
      cause: err,
    });
  }

  close(): void {
    for (const id of [...this.clients.keys()]) this.disconnect(id);
  }
}
