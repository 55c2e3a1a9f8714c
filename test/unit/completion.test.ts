// Shell completion: what `banger __complete` offers for a line, read from the real command tree; the scripts
// `banger completion SHELL` prints; and live names, which come only from a bangerd that is already running.
// The shells themselves run these scripts in test/e2e/completion.test.ts.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Command } from 'commander';
import { chooseVia } from '../../src/cli/commands/vm-exec.ts';
import { BY_NAME, offerFor, renderOffer, type LiveKind, type Offer } from '../../src/cli/completion-engine.ts';
import { liveNames } from '../../src/cli/completion-names.ts';
import { buildProgram, main, type MainDeps } from '../../src/cli/program.ts';
import type { Output } from '../../src/cli/output.ts';
import { serve, type Handler } from '../../src/protocol/jsonrpc.ts';
import { parseKillSignal } from '../../src/protocol/kill-signals.ts';
import type { Clock } from '../../src/system/clock.ts';

const program = (): Command =>
  buildProgram({ output: { out: () => undefined, err: () => undefined }, client: () => assert.fail('completion builds the tree only'), guestCommand: null, exit: () => assert.fail('no exit') }, () => undefined);

/** The words after `banger`, split on spaces; a trailing space leaves an empty word, as the scripts send it. */
const offer = (line: string): Offer => offerFor(program(), line.split(' '));
const values = (o: Offer): string[] => o.candidates.map((c) => c.value);

describe('what completion offers, from the command tree', () => {
  it('offers subcommands that start with the word, by name, and never hidden ones', () => {
    assert.deepEqual(values(offer('vm st')), ['start', 'stop', 'stats']);
    assert.deepEqual(values(offer('vm workspace ')), ['prepare', 'export', 'help']);
    const top = values(offer(''));
    assert.ok(top.includes('completion') && top.includes('vm'), top.join(' '));
    assert.ok(!top.some((c) => c.startsWith('ssh-proxy') || c.startsWith('ssh-known-hosts') || c.startsWith('__')), top.join(' '));
    assert.equal(offer('vm st').candidates[1]!.description, 'sync and stop VMs (fast: no guest shutdown)');
  });

  it('offers VM names for every VM argument, through aliases too, and not those already on the line', () => {
    for (const line of ['vm stop ', 'vm start ', 'vm rm ', 'vm delete ', 'vm show ', 'vm ssh ', 'vm exec ', 'vm kill ', 'vm logs -f ', 'vm workspace prepare ', 'image promote ']) {
      const o = offer(line);
      assert.deepEqual([o.live, o.paths, o.candidates], ['vms', null, []], line);
    }
    assert.deepEqual(offer('vm stop web db w').given, ['web', 'db']);
    assert.equal(offer('vm stop web db w').partial, 'w');
    // One VM only: nothing after it.
    assert.deepEqual(offer('vm show web ').live, null);
  });

  it('does not take an option value for an argument', () => {
    assert.equal(offer('vm forward --remove 9000 ').live, 'vms');
    assert.equal(offer('vm forward web --remove 9000 ').live, null);
    assert.equal(offer('vm stop --json ').live, 'vms');
  });

  it('offers image and kernel names where an image or a kernel is named', () => {
    for (const line of ['image show ', 'image delete ', 'image rm old ', 'vm run --image ', 'vm create --name box --image ', 'image make-bundle --from-image ']) {
      assert.equal(offer(line).live, 'images', line);
    }
    for (const line of ['kernel show ', 'kernel rm ', 'kernel delete a ', 'image register x --kernel-ref ', 'image make-bundle --kernel-ref ']) {
      assert.equal(offer(line).live, 'kernels', line);
    }
    // New names, not existing ones.
    for (const line of ['kernel pull ', 'kernel import ', 'image register ', 'vm create --name ']) assert.equal(offer(line).live, null, line);
  });

  it('offers enumerated values, after a space or an =', () => {
    assert.deepEqual(values(offer('vm exec --via ')), ['auto', 'agent', 'ssh']);
    assert.deepEqual([values(offer('vm exec web --via=a')), offer('vm exec web --via=a').prefix], [['auto', 'agent'], '--via=']);
    assert.deepEqual(values(offer('vm kill -s ')), ['KILL', 'TERM', 'INT', 'HUP', 'QUIT']);
    assert.deepEqual(values(offer('vm kill web --signal T')), ['TERM']);
    assert.deepEqual(values(offer('completion ')), ['bash', 'zsh', 'fish']);
  });

  it('lets the shell complete host paths where a file or directory is asked for', () => {
    assert.equal(offer('vm run ').paths, 'dirs');
    assert.equal(offer('vm run --rm ./a ').paths, 'dirs');
    assert.equal(offer('vm workspace prepare web ').paths, 'dirs');
    assert.equal(offer('kernel import k --from ').paths, 'dirs');
    assert.equal(offer('image make-bundle --out ').paths, 'files');
    assert.deepEqual([offer('image make-bundle --out=d').paths, offer('image make-bundle --out=d').prefix], ['files', '--out=']);
    assert.equal(offer('vm workspace export web -o ').paths, 'files');
    // A git ref, not a host directory.
    assert.equal(offer('vm workspace prepare web . --from ').paths, null);
  });

  it('offers the flags of the command reached, long and short', () => {
    const flags = values(offer('vm list -'));
    for (const f of ['--all', '-a', '--latest', '--quiet', '--json', '--help']) assert.ok(flags.includes(f), flags.join(' '));
    assert.deepEqual(values(offer('vm exec web --v')), ['--via']);
    assert.ok(values(offer('--')).includes('--version'));
  });

  it('offers nothing after `--` (the guest command) or past the last argument', () => {
    for (const line of ['vm exec web -- ', 'vm exec web -- l', 'vm run -- ls -', 'vm ssh web -- x ', 'version ', 'vm lst ', 'nosuch ']) {
      assert.deepEqual([values(offer(line)), offer(line).live, offer(line).paths], [[], null, null], line);
    }
  });

  it('names only options and arguments the tree has', () => {
    const root = program();
    for (const key of Object.keys(BY_NAME)) {
      const words = key.split(' ');
      const last = words.pop()!;
      let cmd: Command | undefined = root;
      for (const w of words) cmd = cmd?.commands.find((c) => c.name() === w);
      assert.ok(cmd, `${key}: no command ${words.join(' ')}`);
      const found = last.startsWith('-') ? cmd.options.some((o) => o.long === last) : cmd.registeredArguments.some((a) => a.name() === last);
      assert.ok(found, `${key}: ${words.join(' ')} has no ${last}`);
    }
  });

  it('offers only values the commands accept', () => {
    for (const via of values(offer('vm exec --via '))) assert.equal(chooseVia(via, false), via === 'auto' ? 'agent' : via);
    for (const signal of values(offer('vm kill -s '))) assert.equal(parseKillSignal(signal), `SIG${signal}`);
  });
});

describe('the lines banger __complete prints', () => {
  it('starts with the kind, then one candidate per line with its description on one line', () => {
    const o: Offer = { candidates: [{ value: 'start', description: 'boot\n  stopped VMs' }, { value: 'stop' }, { value: 'ssh' }], live: null, paths: null, prefix: '', partial: 'st', given: [] };
    assert.deepEqual(renderOffer(o, []), ['words', 'start\tboot stopped VMs', 'stop']);
  });

  it('filters live names by the word, drops those already given or repeated, and keeps the prefix', () => {
    const o: Offer = { candidates: [], live: 'vms', paths: null, prefix: '--x=', partial: 'w', given: ['web'] };
    assert.deepEqual(renderOffer(o, ['web', 'db', 'www', 'www', 'wild\tone']), ['words', '--x=www']);
    assert.deepEqual(renderOffer({ ...o, live: null, paths: 'dirs', prefix: '' }, []), ['dirs']);
  });
});

interface Run {
  status: number;
  out: string[];
  err: string[];
  connects: number;
  asked: LiveKind[];
}

async function run(argv: string[], names: MainDeps['liveNames'] = async () => []): Promise<Run> {
  const r: Run = { status: -1, out: [], err: [], connects: 0, asked: [] };
  const output: Output = { out: (t) => r.out.push(t), err: (t) => r.err.push(t) };
  r.status = await main(argv, {
    output,
    connect: async () => {
      r.connects++;
      return assert.fail('completion never connects through the CLI (which would start bangerd)');
    },
    liveNames: async (kind) => {
      r.asked.push(kind);
      return names!(kind);
    },
    exit: () => assert.fail('no exit'),
  });
  return r;
}

describe('banger __complete and banger completion', () => {
  it('prints the candidates with live names, exit 0, nothing on stderr, asking bangerd only when names are due', async () => {
    const r = await run(['__complete', 'vm', 'stop', ''], async (kind) => (kind === 'vms' ? ['web', 'db'] : []));
    assert.deepEqual(r, { status: 0, out: ['words\nweb\ndb'], err: [], connects: 0, asked: ['vms'] });
    const sub = await run(['__complete', 'vm', 'st']);
    assert.deepEqual([sub.status, sub.out[0]!.split('\n').map((l) => l.split('\t')[0]), sub.asked], [0, ['words', 'start', 'stop', 'stats'], []]);
  });

  it('takes `--` and flags on the line as words, not as its own arguments', async () => {
    const r = await run(['__complete', 'vm', 'exec', '--via', '']);
    assert.deepEqual([r.status, r.out, r.err], [0, ['words\nauto\nagent\nssh'], []]);
    const guest = await run(['__complete', 'vm', 'exec', 'web', '--', 'ls', '--help']);
    assert.deepEqual([guest.status, guest.out, guest.err], [0, ['words'], []]);
  });

  it('says nothing and exits 0 when the names cannot be had', async () => {
    const r = await run(['__complete', 'vm', 'stop', ''], async () => {
      throw new Error('socket gone');
    });
    assert.deepEqual([r.status, r.err], [0, []]);
  });

  it('prints each shell a script that calls back into banger', async () => {
    const expected = { bash: 'complete -F _banger_complete banger', zsh: 'compdef _banger banger', fish: "complete -c banger -f -a '(__banger_complete)'" };
    for (const [shell, registration] of Object.entries(expected)) {
      const r = await run(['completion', shell]);
      assert.equal(r.status, 0);
      assert.ok(r.out.join('').includes(registration), `${shell}: ${r.out.join('')}`);
      assert.ok(r.out.join('').includes('banger __complete'), shell);
    }
  });

  it('refuses another shell as an invalid argument whose hint names the ones it has', async () => {
    const r = await run(['completion', 'tcsh']);
    assert.deepEqual([r.status, r.out], [2, []]);
    assert.match(r.err.join('\n'), /no completion script for "tcsh"[^]*bash\|zsh\|fish/);
  });
});

/** A clock whose sleeps end only when the test says so (or when their signal fires). */
class HeldClock implements Clock {
  readonly sleeps: Array<() => void> = [];
  now(): number {
    return 0;
  }
  sleep(_ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      this.sleeps.push(resolve);
      signal?.addEventListener('abort', () => resolve(), { once: true });
    });
  }
}

describe('live names for completion', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-completion-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const listen = async (name: string): Promise<{ server: net.Server; socketPath: string }> => {
    const socketPath = path.join(dir, name);
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    return { server, socketPath };
  };

  it('are none, at once, when nothing listens on the socket (the bound never had to end it)', async () => {
    const clock = new HeldClock();
    assert.deepEqual(await liveNames('vms', { socketPath: path.join(dir, 'absent.sock'), clock }), []);
    fs.writeFileSync(path.join(dir, 'stale.sock'), '');
    assert.deepEqual(await liveNames('vms', { socketPath: path.join(dir, 'stale.sock'), clock }), []);
  });

  it('are the names bangerd lists for VMs, images and kernels', async () => {
    const { server, socketPath } = await listen('bangerd.sock');
    const handlers = new Map<string, Handler>([
      ['vm.list', async () => [{ name: 'web' }, { name: 'db' }]],
      ['image.list', async () => [{ name: 'debian-bookworm' }]],
      ['kernel.list', async () => [{ id: 'host-6.1' }]],
    ]);
    serve(server, handlers);
    try {
      const clock = new HeldClock();
      assert.deepEqual(await liveNames('vms', { socketPath, clock }), ['web', 'db']);
      assert.deepEqual(await liveNames('images', { socketPath, clock }), ['debian-bookworm']);
      assert.deepEqual(await liveNames('kernels', { socketPath, clock }), ['host-6.1']);
    } finally {
      server.close();
    }
  });

  it('are none when bangerd does not answer within the bound, and the connection is dropped', async () => {
    const { server, socketPath } = await listen('hung.sock');
    const clock = new HeldClock();
    const closed = new Promise<void>((resolve) => {
      server.on('connection', (socket) => {
        // The request arrived and is never answered: now the bound runs out.
        socket.once('data', () => clock.sleeps.forEach((end) => end()));
        socket.on('close', () => resolve());
      });
    });
    try {
      assert.deepEqual(await liveNames('vms', { socketPath, clock }), []);
      await closed;
    } finally {
      server.close();
    }
  });
});
