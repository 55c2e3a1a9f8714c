// Terminal sessions and signals: runSsh against a fake `ssh` on PATH, vm run and vm ssh with a fake client,
// a fake runSsh and an EventEmitter standing in for the process's signals.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { vmRun } from '../../src/cli/commands/vm-run.ts';
import { vmSsh } from '../../src/cli/commands/vm-ssh.ts';
import type { CliContext } from '../../src/cli/context.ts';
import type { Output } from '../../src/cli/output.ts';
import { runSsh, type RunSsh } from '../../src/cli/ssh-session.ts';
import { BangerError } from '../../src/protocol/errors.ts';
import type { ImageInfo, SshTarget, VmInfo } from '../../src/protocol/methods.ts';
import type { BangerClient } from '../../src/sdk/client.ts';
import { fails } from '../fakes/expect-error.ts';

const target: SshTarget = {
  vmId: '0123456789ab', name: 'web', ip: '172.30.0.2', user: 'root', keyPath: '/k/id_ed25519', knownHostsPath: '/k/known_hosts',
  hostKeyAlias: 'banger-0123456789ab', netns: null, workdir: '/root',
};

const vm: VmInfo = {
  id: '0123456789ab', name: 'web', state: 'running', image: 'debian-bookworm', kernel: 'host-6.1', vcpus: 1, memoryMib: 512, diskGib: 1,
  ip: '172.30.0.2', mac: '52:54:00:89:ab:cd', tap: 'bgt0123456789ab', accel: 'tcg', pid: 42, createdAt: '2025-01-01T00:00:00.000Z', nat: false, workspace: null,
};

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// The timeout turns a hang (a child that is never ended) into a failure; no test asserts on time.
describe('runSsh', { timeout: 20_000 }, () => {
  let dir: string;
  let savedPath: string | undefined;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-ssh-'));
    fs.mkdirSync(path.join(dir, 'bin'));
    // Records its arguments and pid, then exits with the status in ./exit, or waits to be ended.
    fs.writeFileSync(path.join(dir, 'bin', 'ssh'), [
      '#!/bin/sh',
      `cd ${dir}`,
      'printf "%s\\n" "$@" > args',
      'echo $$ > started.tmp && mv started.tmp started',
      'if [ -f exit ]; then exit "$(cat exit)"; fi',
      'exec sleep 30',
      '',
    ].join('\n'), { mode: 0o755 });
    savedPath = process.env.PATH;
    process.env.PATH = `${path.join(dir, 'bin')}:${process.env.PATH ?? ''}`;
  });

  after(() => {
    process.env.PATH = savedPath;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const reset = (): void => {
    for (const f of ['args', 'started', 'exit']) fs.rmSync(path.join(dir, f), { force: true });
  };

  it('runs ssh with the target and command and returns its exit status', async () => {
    reset();
    fs.writeFileSync(path.join(dir, 'exit'), '7');
    assert.equal(await runSsh(target, ['echo', 'hi there']), 7);
    const args = fs.readFileSync(path.join(dir, 'args'), 'utf8').trimEnd().split('\n');
    assert.deepEqual(args.slice(-3), ['root@172.30.0.2', '--', "echo 'hi there'"]);
    assert.ok(args.includes('HostKeyAlias=banger-0123456789ab'));
  });

  it('ends ssh with SIGTERM when its signal aborts', async () => {
    reset();
    const controller = new AbortController();
    const session = runSsh(target, ['sleep', 'forever'], { signal: controller.signal });
    const started = path.join(dir, 'started');
    while (!fs.existsSync(started)) await new Promise((resolve) => setTimeout(resolve, 10));
    const pid = Number(fs.readFileSync(started, 'utf8'));
    controller.abort();
    assert.equal(await session, 143);
    assert.throws(() => process.kill(pid, 0), /ESRCH/, 'the ssh process is gone');
    assert.equal(process.listenerCount('SIGINT'), 0);
  });

  it('does not start ssh when its signal has already aborted', async () => {
    reset();
    await assert.rejects(runSsh(target, null, { signal: AbortSignal.abort() }), fails('CANCELLED'));
    assert.equal(fs.existsSync(path.join(dir, 'started')), false);
  });
});

interface Session {
  ctx: CliContext;
  signals: EventEmitter;
  events: string[];
  errLines: string[];
  /** Statuses ctx.exit was called with. */
  exits: number[];
}

/**
 * vm run's collaborators as fakes. `on` scripts what happens at each step; each step records whether all three
 * signals had a listener then (a signal with none would end the process).
 */
function fakeSession(on: {
  create?: (signal: AbortSignal) => Promise<void>;
  target?: () => void;
  ssh?: (signal: AbortSignal) => Promise<number>;
  delete?: () => Promise<void>;
}): Session {
  const signals = new EventEmitter();
  const events: string[] = [];
  const errLines: string[] = [];
  const exits: number[] = [];
  const held = (): string => (SIGNALS.every((s) => signals.listenerCount(s) > 0) ? 'held' : 'NOT held');
  const client: Partial<BangerClient> = {
    createVm: async (_params, options) => {
      events.push('create');
      assert.ok(options?.signal, 'the create gets a signal that Ctrl-C aborts');
      await on.create?.(options.signal);
      return vm;
    },
    showImage: async (name) => ({ image: { name, hasSshd: true } as ImageInfo, vms: [] }),
    sshTarget: async () => {
      events.push(`target (${held()})`);
      on.target?.();
      return target;
    },
    deleteVm: async () => {
      events.push(`delete (${held()})`);
      await on.delete?.();
      events.push('deleted');
      return { id: vm.id, name: vm.name };
    },
  };
  const fakeRunSsh: RunSsh = async (t, command, options = {}) => {
    assert.equal(t, target);
    assert.ok(options.signal, 'the session gets a signal that ends it');
    events.push(`ssh ${command?.join(' ')} (${held()})`);
    const status = on.ssh ? await on.ssh(options.signal) : 0;
    events.push('ssh ended');
    return status;
  };
  const output: Output = { out: () => undefined, err: (t) => errLines.push(t) };
  const exit = (status: number): void => {
    exits.push(status);
  };
  const ctx: CliContext = { output, client: async () => client as BangerClient, guestCommand: ['make', 'test'], exit, signals, runSsh: fakeRunSsh };
  return { ctx, signals, events, errLines, exits };
}

function assertReleased(signals: EventEmitter): void {
  for (const s of SIGNALS) assert.equal(signals.listenerCount(s), 0, `no ${s} listener left`);
}

describe('vm run and vm ssh under signals', { timeout: 10_000 }, () => {
  it('--rm: SIGTERM during the session ends ssh, then deletes the VM, and exits 143', async () => {
    const s = fakeSession({
      ssh: async (signal) => {
        setImmediate(() => s.signals.emit('SIGTERM'));
        await aborted(signal);
        return 255;
      },
    });
    assert.equal(await vmRun(s.ctx, [], { rm: true }), 143);
    assert.deepEqual(s.events, ['create', 'target (held)', 'ssh make test (held)', 'ssh ended', 'delete (held)', 'deleted']);
    assertReleased(s.signals);
  });

  it('--rm: SIGHUP while the VM is being deleted lets the delete finish, then exits 129', async () => {
    const s = fakeSession({
      delete: async () => {
        s.signals.emit('SIGHUP');
        await nextTurn();
      },
    });
    assert.equal(await vmRun(s.ctx, [], { rm: true }), 129);
    assert.deepEqual(s.events.slice(-2), ['delete (held)', 'deleted']);
    assertReleased(s.signals);
  });

  it('--rm: Ctrl-C from create until the delete is left to ssh and does not end the session', async () => {
    let abortedBySigint: boolean | null = null;
    const s = fakeSession({
      ssh: async (signal) => {
        s.signals.emit('SIGINT');
        await nextTurn();
        abortedBySigint = signal.aborted;
        return 130;
      },
      delete: async () => {
        s.signals.emit('SIGINT');
      },
    });
    assert.equal(await vmRun(s.ctx, [], { rm: true }), 130, "ssh's status");
    assert.equal(abortedBySigint, false);
    assert.deepEqual(s.events, ['create', 'target (held)', 'ssh make test (held)', 'ssh ended', 'delete (held)', 'deleted']);
    assertReleased(s.signals);
  });

  it('--rm: SIGTERM before ssh starts skips the session, deletes the VM and exits 143', async () => {
    const s = fakeSession({ target: () => s.signals.emit('SIGTERM') });
    assert.equal(await vmRun(s.ctx, [], { rm: true }), 143);
    assert.deepEqual(s.events, ['create', 'target (held)', 'delete (held)', 'deleted']);
  });

  it('--rm: the VM is deleted when ssh cannot be run', async () => {
    const s = fakeSession({
      ssh: async () => {
        throw new BangerError('MISSING_TOOL', 'ssh is not installed');
      },
    });
    await assert.rejects(vmRun(s.ctx, [], { rm: true }), fails('MISSING_TOOL'));
    assert.deepEqual(s.events.slice(-2), ['delete (held)', 'deleted']);
    assertReleased(s.signals);
  });

  it('without --rm, SIGTERM ends ssh, keeps the VM, says so, and exits 143', async () => {
    const s = fakeSession({
      ssh: async (signal) => {
        setImmediate(() => s.signals.emit('SIGTERM'));
        await aborted(signal);
        // As runSsh reports an ssh that SIGTERM ended.
        return 143;
      },
    });
    assert.equal(await vmRun(s.ctx, [], {}), 143);
    assert.deepEqual(s.events, ['create', 'target (held)', 'ssh make test (held)', 'ssh ended']);
    assert.match(s.errLines.at(-1)!, /VM web is still running/);
    assertReleased(s.signals);
  });

  it('vm ssh: SIGHUP ends ssh and exits 129; otherwise ssh\'s status', async () => {
    const hup = fakeSession({
      ssh: async (signal) => {
        setImmediate(() => hup.signals.emit('SIGHUP'));
        await aborted(signal);
        return 255;
      },
    });
    assert.equal(await vmSsh(hup.ctx, 'web'), 129);
    assertReleased(hup.signals);

    const plain = fakeSession({ ssh: async () => 3 });
    assert.equal(await vmSsh(plain.ctx, 'web'), 3);
    assert.deepEqual(plain.events, ['target (NOT held)', 'ssh make test (held)', 'ssh ended']);
  });

  it('--rm: Ctrl-C that makes ssh exit 255 exits 130, and the VM is still deleted', async () => {
    const s = fakeSession({
      ssh: async () => {
        // A terminal's Ctrl-C reaches ssh and the CLI alike; ssh, killed waiting for the guest, exits 255.
        s.signals.emit('SIGINT');
        return 255;
      },
    });
    assert.equal(await vmRun(s.ctx, [], { rm: true }), 130);
    assert.deepEqual(s.events, ['create', 'target (held)', 'ssh make test (held)', 'ssh ended', 'delete (held)', 'deleted']);
    assert.deepEqual(s.exits, []);
    assertReleased(s.signals);
  });

  it("after Ctrl-C the guest command's own status wins when ssh returned it", async () => {
    const s = fakeSession({
      ssh: async () => {
        s.signals.emit('SIGINT');
        return 7;
      },
    });
    assert.equal(await vmRun(s.ctx, [], { rm: true }), 7);
    assert.deepEqual(s.events.slice(-2), ['delete (held)', 'deleted']);
  });

  it('without Ctrl-C, ssh failing (255) stays 255, and the kept VM is not advertised', async () => {
    const s = fakeSession({ ssh: async () => 255 });
    assert.equal(await vmRun(s.ctx, [], {}), 255);
    assert.equal(s.errLines.some((l) => /still running/.test(l)), false);
  });

  it('a Ctrl-C during the delete does not turn a failed ssh into 130', async () => {
    const s = fakeSession({
      ssh: async () => 255,
      delete: async () => {
        s.signals.emit('SIGINT');
      },
    });
    assert.equal(await vmRun(s.ctx, [], { rm: true }), 255);
  });

  it('--rm: Ctrl-C after the VM is created but before ssh starts skips the session, deletes the VM and exits 130', async () => {
    const s = fakeSession({ target: () => s.signals.emit('SIGINT') });
    assert.equal(await vmRun(s.ctx, [], { rm: true }), 130);
    assert.deepEqual(s.events, ['create', 'target (held)', 'delete (held)', 'deleted']);
    assertReleased(s.signals);
  });

  it('without --rm, Ctrl-C exits 130 and says the VM is still running', async () => {
    const s = fakeSession({
      ssh: async () => {
        s.signals.emit('SIGINT');
        return 255;
      },
    });
    assert.equal(await vmRun(s.ctx, [], {}), 130);
    assert.match(s.errLines.at(-1)!, /VM web is still running/);
  });

  it('Ctrl-C during the create cancels it; a second one exits 130 through ctx.exit, not process.exit', async () => {
    const s = fakeSession({
      create: async (signal) => {
        s.signals.emit('SIGINT');
        assert.equal(signal.aborted, true, 'the first Ctrl-C aborts the create');
        assert.deepEqual(s.exits, []);
        s.signals.emit('SIGINT');
        assert.deepEqual(s.exits, [130], 'the second one exits');
        throw new BangerError('CANCELLED', 'create cancelled');
      },
    });
    await assert.rejects(vmRun(s.ctx, [], { rm: true }), fails('CANCELLED'));
    assert.deepEqual(s.events, ['create']);
    assert.match(s.errLines.join('\n'), /cancelling; the VM being created is removed/);
    assertReleased(s.signals);
  });

  it('vm ssh: Ctrl-C that makes ssh exit 255 exits 130; a remote status after Ctrl-C is kept', async () => {
    const killed = fakeSession({
      ssh: async () => {
        killed.signals.emit('SIGINT');
        return 255;
      },
    });
    assert.equal(await vmSsh(killed.ctx, 'web'), 130);
    assertReleased(killed.signals);

    const remote = fakeSession({
      ssh: async () => {
        remote.signals.emit('SIGINT');
        return 7;
      },
    });
    assert.equal(await vmSsh(remote.ctx, 'web'), 7);
  });
});
