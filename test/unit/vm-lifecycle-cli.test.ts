// The lifecycle commands of the CLI against a fake client: several refs resolved from one listing, vm list's
// selections, vm kill's signal, vm set's flags and vm prune's question.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { vmDelete } from '../../src/cli/commands/vm-delete.ts';
import { vmKill } from '../../src/cli/commands/vm-kill.ts';
import { selectVms, vmList } from '../../src/cli/commands/vm-list.ts';
import { vmPrune } from '../../src/cli/commands/vm-prune.ts';
import { vmRestart } from '../../src/cli/commands/vm-restart.ts';
import { setParams, vmSet } from '../../src/cli/commands/vm-set.ts';
import { vmStart } from '../../src/cli/commands/vm-start.ts';
import { vmStop } from '../../src/cli/commands/vm-stop.ts';
import type { CliContext } from '../../src/cli/context.ts';
import { resolveRefs } from '../../src/cli/each-vm.ts';
import { main } from '../../src/cli/program.ts';
import type { Output } from '../../src/cli/output.ts';
import { BangerError } from '../../src/protocol/errors.ts';
import { parseKillSignal } from '../../src/protocol/kill-signals.ts';
import type { VmInfo, VmPruneResult } from '../../src/protocol/methods.ts';
import type { BangerClient } from '../../src/sdk/client.ts';
import { fails } from '../fakes/expect-error.ts';

function captureOutput(): Output & { outLines: string[]; errLines: string[] } {
  const outLines: string[] = [];
  const errLines: string[] = [];
  return { outLines, errLines, out: (t) => outLines.push(t), err: (t) => errLines.push(t) };
}

function vmInfo(name: string, id: string, extra: Partial<VmInfo> = {}): VmInfo {
  return {
    id, name, state: 'stopped', image: 'debian-bookworm', kernel: 'host-6.1', vcpus: 1, memoryMib: 512, diskGib: 1, ip: '172.30.0.2',
    mac: '52:54:00:00:00:00', tap: `bgt${id}`, accel: null, pid: null, createdAt: '2025-01-01T00:00:00.000Z', nat: false, workspace: null, ...extra,
  };
}

const A = vmInfo('alpha', 'aaaa11112222');
const B = vmInfo('beta', 'bbbb11112222', { state: 'running', createdAt: '2025-01-03T00:00:00.000Z' });
const B2 = vmInfo('bravo', 'bbbb33334444', { createdAt: '2025-01-02T00:00:00.000Z' });
const ALL = [A, B, B2];

/** A client whose listVms answers ALL and counts its calls; `extra` scripts the rest. */
function fakeClient(extra: Partial<BangerClient> = {}): Partial<BangerClient> & { lists: number } {
  const client = {
    lists: 0,
    listVms: async () => {
      client.lists++;
      return ALL;
    },
    ...extra,
  };
  return client;
}

function cliContext(client: Partial<BangerClient>, output: Output, extra: Partial<CliContext> = {}): CliContext {
  return { output, client: async () => client as BangerClient, guestCommand: null, exit: (status) => assert.fail(`exit(${status}) called`), ...extra };
}

function deferred<T>(): { promise: Promise<T>; resolve(value: T): void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((res) => {
    resolve = res;
  });
  return { promise, resolve };
}

describe('resolveRefs', () => {
  it('finds VMs by name, full id or unique id prefix, keeping the order given', () => {
    const r = resolveRefs(ALL, ['bravo', 'aaaa', 'bbbb11112222']);
    assert.deepEqual(r.map((x) => ('vm' in x ? x.vm.name : 'error')), ['bravo', 'alpha', 'beta']);
  });

  it('runs a VM once when it is named twice, or by name and by id prefix', () => {
    const r = resolveRefs(ALL, ['alpha', 'beta', 'aaaa1', 'alpha']);
    assert.deepEqual(r.map((x) => x.ref), ['alpha', 'beta']);
  });

  it('a missing or ambiguous ref fails alone, with its error and a hint', () => {
    const r = resolveRefs(ALL, ['nope', 'bbbb', 'alpha']);
    assert.equal(r.length, 3);
    assert.ok('error' in r[0]!);
    fails('VM_NOT_FOUND', /no VM named or with id "nope"/, { hint: true })((r[0] as { error: unknown }).error);
    fails('INVALID_ARGUMENT', /"bbbb" matches 2 VMs \(beta, bravo\)/, { hint: true })((r[1] as { error: unknown }).error);
    assert.equal((r[2] as { vm: VmInfo }).vm.name, 'alpha');
  });
});

describe('vm stop, delete and kill with several VMs', () => {
  it('lists once, runs each VM by its full id, all at once, and reports in the order given', async () => {
    const slow = deferred<VmInfo>();
    const out = captureOutput();
    const started: string[] = [];
    const client = fakeClient({
      stopVm: async (id: string) => {
        started.push(id);
        if (id === A.id) return slow.promise;
        if (id === B2.id) throw new BangerError('HELPER_UNAVAILABLE', 'bangerd-root is not running', { hint: 'start it' });
        return ALL.find((v) => v.id === id)!;
      },
    });
    const status = vmStop(cliContext(client, out), ['alpha', 'nope', 'bravo', 'beta', 'aaaa'], {});
    await new Promise((resolve) => setImmediate(resolve));
    // Every stop was asked for before the slow one finished.
    assert.deepEqual(started, [A.id, B2.id, B.id]);
    slow.resolve(A);
    assert.equal(await status, 3, "the first failure's status, in the order given");
    assert.equal(client.lists, 1);
    assert.deepEqual(out.outLines, ['alpha stopped', 'beta stopped']);
    assert.deepEqual(out.errLines, [
      'banger: nope: no VM named or with id "nope"', 'hint: see banger vm list --all',
      'banger: bravo: bangerd-root is not running', 'hint: start it',
    ]);
  });

  it('prints the VMs it deleted as JSON on stdout and the failures as JSON on stderr', async () => {
    const out = captureOutput();
    const client = fakeClient({
      deleteVm: async (id: string) => {
        if (id === B.id) throw new BangerError('HELPER_UNAVAILABLE', 'tap could not be removed', { hint: 'start bangerd-root, then rerun: banger vm delete beta' });
        return { id, name: ALL.find((v) => v.id === id)!.name };
      },
    });
    assert.equal(await vmDelete(cliContext(client, out), ['alpha', 'beta'], { json: true }), 13);
    assert.deepEqual(JSON.parse(out.outLines.join('\n')), [{ id: A.id, name: 'alpha' }]);
    assert.deepEqual(out.errLines.map((l) => JSON.parse(l)), [
      { error: { code: 'HELPER_UNAVAILABLE', message: 'beta: tap could not be removed', hint: 'start bangerd-root, then rerun: banger vm delete beta' } },
    ]);
  });

  it('with one VM, reports its failure without naming it again', async () => {
    const out = captureOutput();
    assert.equal(await vmDelete(cliContext(fakeClient(), out), ['x'], {}), 3);
    assert.deepEqual(out.errLines, ['banger: no VM named or with id "x"', 'hint: see banger vm list --all']);
    assert.deepEqual(out.outLines, []);
  });

  it('vm kill sends SIGKILL by default, or the signal given', async () => {
    const kills: Array<[string, unknown]> = [];
    const client = fakeClient({
      killVm: async (id: string, signal?: string) => {
        kills.push([id, signal]);
        return { ...B, state: 'stopped' as const };
      },
    });
    const out = captureOutput();
    assert.equal(await vmKill(cliContext(client, out), ['beta'], {}), 0);
    assert.equal(await vmKill(cliContext(client, out), ['beta'], { signal: 'term' }), 0);
    assert.deepEqual(kills, [[B.id, 'SIGKILL'], [B.id, 'SIGTERM']]);
    assert.deepEqual(out.outLines, ['beta killed (SIGKILL), stopped', 'beta killed (SIGTERM), stopped']);
  });

  it('vm kill refuses a signal it does not send before contacting the daemon', async () => {
    const ctx = cliContext({}, captureOutput(), { client: () => assert.fail('no client') });
    await assert.rejects(vmKill(ctx, ['beta'], { signal: 'USR1' }), fails('INVALID_ARGUMENT', /--signal "USR1"/, { hint: true }));
  });

  it('parseKillSignal reads names with or without SIG, any case, and numbers', () => {
    assert.equal(parseKillSignal('KILL'), 'SIGKILL');
    assert.equal(parseKillSignal('sigterm'), 'SIGTERM');
    assert.equal(parseKillSignal('2'), 'SIGINT');
    assert.equal(parseKillSignal('HUP'), 'SIGHUP');
    assert.throws(() => parseKillSignal('STOP'), fails('INVALID_ARGUMENT', /STOP/));
    assert.throws(() => parseKillSignal('10'), fails('INVALID_ARGUMENT'));
  });
});

describe('vm start and vm restart with several VMs', () => {
  it('boot at once, name each VM in its progress lines, and report in order', async () => {
    const out = captureOutput();
    const gates = new Map([[A.id, deferred<void>()], [B2.id, deferred<void>()]]);
    const asked: string[] = [];
    const client = fakeClient({
      restartVm: async (id: string, params, options) => {
        asked.push(id);
        assert.deepEqual(params, { waitSsh: true, sshTimeoutSec: 30 });
        options?.onProgress?.({ stage: 'boot', message: 'starting qemu/tcg' });
        await gates.get(id)!.promise;
        return { ...ALL.find((v) => v.id === id)!, state: 'running' as const };
      },
    });
    const signals = new EventEmitter();
    const status = vmRestart(cliContext(client, out, { signals }), ['alpha', 'bravo'], { sshTimeout: '30' });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(asked, [A.id, B2.id], 'both asked for before either finished');
    gates.get(B2.id)!.resolve();
    gates.get(A.id)!.resolve();
    assert.equal(await status, 0);
    assert.deepEqual(out.outLines, ['alpha running (172.30.0.2)', 'bravo running (172.30.0.2)']);
    assert.ok(out.errLines.some((l) => / boot +alpha: starting qemu\/tcg$/.test(l)), out.errLines.join('\n'));
    assert.ok(out.errLines.some((l) => / boot +bravo: starting qemu\/tcg$/.test(l)), out.errLines.join('\n'));
    assert.equal(signals.listenerCount('SIGINT'), 0);
  });

  it('Ctrl-C cancels every start under way', async () => {
    const out = captureOutput();
    const signals = new EventEmitter();
    const seen: AbortSignal[] = [];
    const client = fakeClient({
      startVm: (_id: string, _params, options) => new Promise<VmInfo>((_resolve, reject) => {
        seen.push(options!.signal!);
        options!.signal!.addEventListener('abort', () => reject(new BangerError('CANCELLED', 'cancelled by the caller')));
      }),
    });
    const status = vmStart(cliContext(client, out, { signals }), ['alpha', 'bravo'], {});
    await new Promise((resolve) => setImmediate(resolve));
    signals.emit('SIGINT');
    assert.equal(await status, 130);
    assert.equal(seen.length, 2);
    assert.ok(seen.every((s) => s.aborted));
    assert.match(out.errLines[0]!, /cancelling; the VMs being started are stopped again/);
  });
});

describe('vm list, vm ls, vm ps and ps', () => {
  it('selects running VMs by default, every VM with --all, and the newest with --latest', () => {
    assert.deepEqual(selectVms(ALL, {}).map((v) => v.name), ['beta']);
    assert.deepEqual(selectVms(ALL, { all: true }).map((v) => v.name), ['alpha', 'beta', 'bravo']);
    assert.deepEqual(selectVms(ALL, { latest: true }).map((v) => v.name), ['beta']);
    assert.deepEqual(selectVms([A, B2], { latest: true }).map((v) => v.name), ['bravo'], 'whatever its state');
    assert.deepEqual(selectVms([], { latest: true }), []);
  });

  it('prints ids one per line with --quiet, and JSON with --json', async () => {
    const out = captureOutput();
    await vmList(cliContext(fakeClient(), out), { all: true, quiet: true });
    assert.deepEqual(out.outLines, [`${A.id}\n${B.id}\n${B2.id}`]);
    const json = captureOutput();
    await vmList(cliContext(fakeClient(), json), { json: true });
    assert.deepEqual(JSON.parse(json.outLines.join('')), [B]);
    await assert.rejects(vmList(cliContext(fakeClient(), out), { quiet: true, json: true }), fails('INVALID_ARGUMENT', /--quiet and --json/));
  });

  it('says how to see the VMs that are not running when none runs', async () => {
    const out = captureOutput();
    await vmList(cliContext({ listVms: async () => [A] }, out), {});
    assert.deepEqual(out.outLines, ['no running VMs (1 not running; see them: banger vm list --all)']);
  });

  for (const argv of [['vm', 'list'], ['vm', 'ls'], ['vm', 'ps'], ['ps']]) {
    it(`${argv.join(' ')} takes --all, --latest, --quiet and --json`, async () => {
      const out = captureOutput();
      const status = await main([...argv, '--all', '--json'], { output: out, connect: async () => ({ ...fakeClient(), close: () => undefined }) as unknown as BangerClient, exit: () => undefined });
      assert.equal(status, 0, out.errLines.join('\n'));
      assert.equal(JSON.parse(out.outLines.join('')).length, 3);
      const quiet = captureOutput();
      await main([...argv, '-q', '-l'], { output: quiet, connect: async () => ({ ...fakeClient(), close: () => undefined }) as unknown as BangerClient, exit: () => undefined });
      assert.deepEqual(quiet.outLines, [B.id]);
    });
  }
});

describe('vm set', () => {
  it('passes only the sizes given, parsed like vm create', () => {
    assert.deepEqual(setParams('web', { cpus: '2', memory: '4G', disk: '16G' }), { vcpus: 2, memoryMib: 4096, diskGib: 16 });
    assert.deepEqual(setParams('web', { disk: '20' }), { diskGib: 20 });
  });

  it('refuses no size at all, or a bad one, before contacting the daemon', async () => {
    const ctx = cliContext({}, captureOutput(), { client: () => assert.fail('no client') });
    await assert.rejects(vmSet(ctx, 'web', {}), fails('INVALID_ARGUMENT', /--cpus, --memory or --disk/, { hint: true }));
    await assert.rejects(vmSet(ctx, 'web', { disk: '8M' }), fails('INVALID_ARGUMENT', /--disk/));
  });

  it('prints the VM with its new size, and says when it applies', async () => {
    const out = captureOutput();
    const client = { setVm: async (ref: string, size: object) => ({ ...A, ...size, name: ref }) };
    assert.equal(await vmSet(cliContext(client, out), 'alpha', { cpus: '4' }), 0);
    assert.match(out.outLines[0]!, /spec: +4 vCPU/);
    assert.match(out.outLines[0]!, /next boot: banger vm start alpha/);
  });
});

describe('vm prune', () => {
  const result: VmPruneResult = { deleted: [{ id: A.id, name: 'alpha' }], failed: [] };

  it('asks first, then deletes only the VMs it named', async () => {
    const out = captureOutput();
    const questions: string[] = [];
    const pruned: unknown[] = [];
    const client = fakeClient({ pruneVms: async (ids?: string[]) => (pruned.push(ids), result) });
    const status = await vmPrune(cliContext(client, out, { confirm: async (q) => (questions.push(q), true) }), {});
    assert.equal(status, 0);
    assert.deepEqual(questions, ['Delete 2 VMs that are not running (alpha, bravo)?']);
    assert.deepEqual(pruned, [[A.id, B2.id]]);
    assert.deepEqual(out.outLines, ['alpha deleted']);
  });

  it('deletes nothing when the answer is no', async () => {
    const out = captureOutput();
    const client = fakeClient({ pruneVms: async () => assert.fail('nothing is deleted') });
    assert.equal(await vmPrune(cliContext(client, out, { confirm: async () => false }), {}), 0);
    assert.deepEqual(out.errLines, ['banger: nothing deleted']);
  });

  it('refuses without -f when there is no terminal to ask, naming -f', async () => {
    const client = fakeClient({ pruneVms: async () => assert.fail('nothing is deleted') });
    await assert.rejects(vmPrune(cliContext(client, captureOutput(), { confirm: async () => null }), {}), (err: unknown) => {
      fails('INVALID_ARGUMENT', /would delete alpha, bravo, and there is no terminal/)(err);
      assert.match((err as BangerError).hint!, /banger vm prune -f/);
      return true;
    });
  });

  it('with -f asks nothing and leaves the choice to the daemon; a failure sets the exit status', async () => {
    const out = captureOutput();
    const client = fakeClient({
      pruneVms: async (ids?: string[]) => {
        assert.equal(ids, undefined);
        return { deleted: [], failed: [{ id: B2.id, name: 'bravo', error: { code: 'HELPER_UNAVAILABLE', message: 'tap kept', hint: 'start bangerd-root' } }] };
      },
    });
    const status = await vmPrune(cliContext(client, out, { confirm: async () => assert.fail('no question') }), { force: true, json: true });
    assert.equal(status, 13);
    assert.equal(client.lists, 0);
    assert.deepEqual(JSON.parse(out.outLines.join('')).failed[0].name, 'bravo');
    assert.deepEqual(JSON.parse(out.errLines[0]!), { error: { code: 'HELPER_UNAVAILABLE', message: 'bravo: tap kept', hint: 'start bangerd-root' } });
  });

  it('asks nothing when every VM runs', async () => {
    const out = captureOutput();
    const client = { listVms: async () => [B], pruneVms: async () => assert.fail('nothing to prune') };
    assert.equal(await vmPrune(cliContext(client, out, { confirm: async () => assert.fail('no question') }), {}), 0);
    assert.deepEqual(out.outLines, ['no VMs to prune (every VM is running, or there are none)']);
  });
});
