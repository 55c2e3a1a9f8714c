// The CLI as a whole: main() against a fake client, fake signals and a fake exit. Importing program.ts must
// not run the CLI (main.ts is the entry that does), and a command loads only its own module.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import { buildProgram, commandPath, main, type MainDeps } from '../../src/cli/program.ts';
import type { Output } from '../../src/cli/output.ts';
import { BangerError } from '../../src/protocol/errors.ts';
import type { VmInfo } from '../../src/protocol/methods.ts';
import type { BangerClient } from '../../src/sdk/client.ts';

// Checked before any test runs main(): the import above must not have run the CLI.
const exitCodeAfterImport = process.exitCode;

const vm: VmInfo = {
  id: '0123456789ab', name: 'web', state: 'running', image: 'debian-bookworm', kernel: 'host-6.1', vcpus: 1, memoryMib: 512, diskGib: 1,
  ip: '172.30.0.2', mac: '52:54:00:89:ab:cd', tap: 'bgt0123456789ab', accel: 'tcg', pid: 42, createdAt: '2025-01-01T00:00:00.000Z', nat: false, workspace: null,
};

interface Run {
  status: number;
  out: string[];
  err: string[];
  connects: number;
  closes: number;
  exits: number[];
}

/** Runs main(argv) with `client` as the daemon's client; counts connections, closes and exits. */
async function run(argv: string[], client: Partial<BangerClient> = {}, extra: Partial<MainDeps> = {}): Promise<Run> {
  const result: Run = { status: -1, out: [], err: [], connects: 0, closes: 0, exits: [] };
  const output: Output = { out: (t) => result.out.push(t), err: (t) => result.err.push(t) };
  const fake = { ...client, close: () => void result.closes++ } as BangerClient;
  result.status = await main(argv, {
    output,
    connect: async () => {
      result.connects++;
      return fake;
    },
    exit: (status) => void result.exits.push(status),
    ...extra,
  });
  return result;
}

const jsonErrors = (r: Run): unknown[] => r.err.map((line) => JSON.parse(line));

describe('the CLI program', () => {
  it('is built by importing program.ts, which runs nothing', () => {
    assert.equal(exitCodeAfterImport, undefined);
    const program = buildProgram({ output: { out: () => undefined, err: () => undefined }, client: () => assert.fail('no client'), guestCommand: null, exit: () => assert.fail('no exit') }, () => undefined);
    assert.deepEqual(program.commands.map((c) => c.name()), ['vm', 'ps', 'image', 'kernel', 'system', 'daemon', 'doctor', 'update', 'version', 'ssh-config', 'completion', 'ssh-proxy', 'ssh-known-hosts']);
  });

  it('names the command the arguments reach, by name or alias', () => {
    const program = buildProgram({ output: { out: () => undefined, err: () => undefined }, client: () => assert.fail('no client'), guestCommand: null, exit: () => undefined }, () => undefined);
    assert.equal(commandPath(program, ['vm', 'create', '--cpus', '2']), 'banger vm create');
    assert.equal(commandPath(program, ['vm', 'rm', 'web']), 'banger vm delete');
    assert.equal(commandPath(program, ['vm', 'lst']), 'banger vm');
    assert.equal(commandPath(program, ['--json']), 'banger');
  });

  it('runs a command against the client, prints its result and closes the client', async () => {
    const r = await run(['vm', 'show', 'web', '--json'], { showVm: async () => vm });
    assert.equal(r.status, 0);
    assert.deepEqual(JSON.parse(r.out.join('\n')), vm);
    assert.deepEqual([r.err, r.connects, r.closes], [[], 1, 1]);
  });
});

describe('errors from main', () => {
  it('with --json, a bad flag value is one JSON error on stderr, exit 2, and no daemon is contacted', async () => {
    const r = await run(['vm', 'create', '--cpus', 'two', '--json']);
    assert.equal(r.status, 2);
    assert.deepEqual(r.out, []);
    assert.deepEqual(jsonErrors(r), [{ error: { code: 'INVALID_ARGUMENT', message: '--cpus must be a whole number (got "two")', hint: 'give --cpus as digits only, e.g. --cpus 2' } }]);
    assert.equal(r.connects, 0);
  });

  it("with --json, the daemon's error keeps its exit status and gets its code's hint", async () => {
    const r = await run(['vm', 'show', 'nope', '--json'], {
      showVm: async () => {
        throw new BangerError('VM_NOT_FOUND', 'no VM named "nope"');
      },
    });
    assert.equal(r.status, 3);
    assert.deepEqual(jsonErrors(r), [{ error: { code: 'VM_NOT_FOUND', message: 'no VM named "nope"', hint: 'see the VMs there are: banger vm list --all' } }]);
  });

  it('without --json, the same error is a message and a hint line', async () => {
    const r = await run(['vm', 'start', 'web'], {
      listVms: async () => [vm],
      startVm: async () => {
        throw new BangerError('INVALID_ARGUMENT', 'vcpus must be a whole number from 1 to 64 (got 0)');
      },
    });
    assert.equal(r.status, 2);
    assert.deepEqual(r.err, ['banger: vcpus must be a whole number from 1 to 64 (got 0)', 'hint: see banger vm start --help']);
  });

  it("reports a parse error as INVALID_ARGUMENT with the command's --help as hint, as text and as JSON", async () => {
    const text = await run(['vm', 'list', '--bogus']);
    assert.equal(text.status, 2);
    assert.deepEqual(text.err, ["banger: unknown option '--bogus'", 'hint: see banger vm list --help']);
    const json = await run(['vm', 'lst', '--json']);
    assert.equal(json.status, 2);
    const [only] = jsonErrors(json) as Array<{ error: { code: string; message: string; hint: string } }>;
    assert.equal(jsonErrors(json).length, 1);
    assert.equal(only!.error.code, 'INVALID_ARGUMENT');
    assert.match(only!.error.message, /unknown command 'lst'/);
    assert.equal(only!.error.hint, 'see banger vm --help');
  });

  it('a command group given no command prints its help, then the error', async () => {
    const text = await run(['vm']);
    assert.equal(text.status, 2);
    assert.match(text.err[0]!, /^Usage: banger vm \[options\] \[command\]/);
    assert.deepEqual(text.err.slice(1), ['banger: banger vm needs a command', 'hint: see banger vm --help']);
    // A group takes no --json, so with it the error is that option, as JSON and without the help.
    const json = await run(['vm', '--json']);
    assert.equal(json.status, 2);
    assert.deepEqual(jsonErrors(json), [{ error: { code: 'INVALID_ARGUMENT', message: "unknown option '--json'", hint: 'see banger vm --help' } }]);
  });

  it('--help prints help on stdout and exits 0', async () => {
    const r = await run(['vm', 'run', '--help']);
    assert.equal(r.status, 0);
    assert.match(r.out.join(''), /Usage: banger vm run/);
    assert.deepEqual(r.err, []);
  });

  it('refuses `-- CMD` for commands other than vm run, vm exec and vm ssh, with a hint', async () => {
    const r = await run(['vm', 'list', '--', 'ls']);
    assert.equal(r.status, 2);
    assert.deepEqual(r.err, ['banger: `-- CMD` is only accepted by vm run, vm exec and vm ssh', 'hint: run a command in a VM with: banger vm run -- CMD, or banger vm exec NAME -- CMD']);
  });

  it('vm create --nat asks for NAT, and without it nothing about NAT is sent', async () => {
    const sent: unknown[] = [];
    const createVm = async (params: unknown) => {
      sent.push(params);
      throw new BangerError('CANCELLED', 'stop here');
    };
    await run(['vm', 'create', '--nat'], { createVm });
    await run(['vm', 'create'], { createVm });
    assert.deepEqual(sent, [{ nat: true, start: true }, { start: true }]);
  });

  it('a second Ctrl-C during a create exits 130 through the injected exit', async () => {
    const signals = new EventEmitter();
    const r = await run(['vm', 'create'], {
      createVm: async (_params, options) => {
        signals.emit('SIGINT');
        signals.emit('SIGINT');
        assert.equal(options?.signal?.aborted, true);
        throw new BangerError('CANCELLED', 'create cancelled; nothing was left behind');
      },
    }, { signals });
    assert.deepEqual(r.exits, [130]);
    assert.equal(r.status, 130);
    assert.equal(signals.listenerCount('SIGINT'), 0);
  });
});

describe('CLI start-up', () => {
  it('loads only the module of the command that runs', () => {
    const root = path.resolve(import.meta.dirname, '../..');
    const program = pathToFileURL(path.join(root, 'src/cli/program.ts')).href;
    // A child process, so this file's own imports do not count; a load hook records every module it loads.
    const script = `
      import { registerHooks } from 'node:module';
      const loaded = [];
      registerHooks({ load(url, context, next) { loaded.push(url); return next(url, context); } });
      const { main } = await import(${JSON.stringify(program)});
      const client = { listVms: async () => [], close() {} };
      const status = await main(['vm', 'list', '--json'], { output: { out() {}, err() {} }, connect: async () => client, exit() {} });
      process.stdout.write(JSON.stringify({ status, loaded: loaded.filter((u) => u.includes('/src/')).map((u) => u.slice(u.indexOf('/src/') + 1)) }));
    `;
    const { status, loaded } = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as { status: number; loaded: string[] };
    assert.equal(status, 0);
    assert.ok(loaded.includes('src/cli/commands/vm-list.ts'), loaded.join(' '));
    const others = loaded.filter((f) => f.startsWith('src/cli/commands/') && f !== 'src/cli/commands/vm-list.ts');
    assert.deepEqual(others, []);
    for (const heavy of ['src/cli/ssh-session.ts', 'src/sdk/client.ts', 'src/sdk/autostart.ts']) assert.ok(!loaded.includes(heavy), `${heavy} is not loaded`);
  });
});
