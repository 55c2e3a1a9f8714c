// [[file_sync]]: the config rules, the checks against the host at create time, the archive (unpacked here with
// the system tar, as the guest unpacks it) and its trip over ssh, and the create that runs it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { FILE_SYNC_MAX_BYTES, resolveFileSync, sendFileSync, syncArchive } from '../../src/daemon/services/file-sync.ts';
import { BangerError } from '../../src/protocol/errors.ts';
import type { SshTarget } from '../../src/protocol/methods.ts';
import { loadConfig } from '../../src/system/config.ts';
import { parseFileSyncEntry, type FileSyncEntry } from '../../src/system/file-sync-rules.ts';
import { writeTar } from '../../src/system/tar-writer.ts';
import { fails } from '../fakes/expect-error.ts';
import { FakeProcessRunner } from '../fakes/fake-process-runner.ts';
import { callContext, vmServiceHarness } from '../fakes/vm-service-harness.ts';

let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-filesync-'));
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function configWith(text: string): ReturnType<typeof loadConfig> {
  const file = path.join(dir, 'config.toml');
  fs.writeFileSync(file, text);
  return loadConfig(file, {});
}

describe('[[file_sync]] in config.toml', () => {
  it('reads entries: ~/ and /root/ guest paths normalised, mode as octal, no mode as null', () => {
    const config = configWith(`
[[file_sync]]
host = "~/.gitconfig"
guest = "~/.gitconfig"
mode = "0644"

[[file_sync]]
host = "~/dotfiles/./nvim"
guest = "/root/.config/nvim/"
`);
    assert.deepEqual(config.fileSync, [
      { host: '~/.gitconfig', guest: '/root/.gitconfig', mode: 0o644 },
      { host: '~/dotfiles/./nvim', guest: '/root/.config/nvim', mode: null },
    ]);
  });

  it('is empty when there are none', () => {
    assert.deepEqual(configWith('').fileSync, []);
  });

  for (const [what, entry, pattern] of [
    ['a relative host path', 'host = ".gitconfig"\nguest = "~/.gitconfig"', /entry 1 \(host = ".gitconfig"\): host must start with ~\//],
    ['a host path that leaves the home', 'host = "~/../etc/passwd"\nguest = "~/x"', /host must name something inside your home/],
    ['the home itself', 'host = "~/."\nguest = "~/x"', /inside your home/],
    ['a guest path outside the home', 'host = "~/.gitconfig"\nguest = "/etc/gitconfig"', /guest = "\/etc\/gitconfig" must be below the guest's home/],
    ['a guest path that climbs out', 'host = "~/.gitconfig"\nguest = "~/../etc/x"', /must be below the guest's home/],
    ['the guest home itself', 'host = "~/dotfiles"\nguest = "~/"', /must be below the guest's home/],
    ["banger's own key", 'host = "~/.ssh/authorized_keys"\nguest = "~/.ssh/authorized_keys"', /banger's own ssh key/],
    ['a mode that is not octal', 'host = "~/a"\nguest = "~/a"\nmode = "rw"', /mode must be octal/],
    ['a mode as a number', 'host = "~/a"\nguest = "~/a"\nmode = 600', /mode must be octal permission bits in quotes \(got 600\)/],
    ['a mode the owner cannot read', 'host = "~/a"\nguest = "~/a"\nmode = "0200"', /unreadable/],
    ['an unknown key', 'host = "~/a"\nguest = "~/a"\nowner = "me"', /unknown key owner/],
    ['a missing guest', 'host = "~/a"', /guest must be a path/],
  ] as const) {
    it(`refuses ${what}, naming the entry, with a hint`, () => {
      assert.throws(() => configWith(`[[file_sync]]\n${entry}\n`), fails('INVALID_ARGUMENT', pattern, { hint: true }));
    });
  }

  it('names the second entry when it is the bad one', () => {
    assert.throws(() => configWith('[[file_sync]]\nhost = "~/a"\nguest = "~/a"\n[[file_sync]]\nhost = "/x"\nguest = "/tmp/x"\n'), fails('INVALID_ARGUMENT', /\[\[file_sync\]\] entry 2 \(host = "\/x"\)/));
  });

  it('refuses [file_sync] written as one table', () => {
    assert.throws(() => configWith('[file_sync]\nhost = "~/a"\n'), fails('INVALID_ARGUMENT', /list of \[\[file_sync\]\] entries/, { hint: true }));
  });

  it('parseFileSyncEntry takes an absolute host path (checked against the home at create time)', () => {
    assert.deepEqual(parseFileSyncEntry({ host: '/home/me/.gitconfig', guest: '~/.gitconfig' }, 0), { entry: { host: '/home/me/.gitconfig', guest: '/root/.gitconfig', mode: null } });
  });
});

describe('resolveFileSync: the entries against the host', () => {
  let home: string;
  const entry = (host: string, guest = '/root/x'): FileSyncEntry => ({ host, guest, mode: null });

  beforeEach(() => {
    home = path.join(dir, 'home');
    fs.mkdirSync(home);
    fs.writeFileSync(path.join(home, '.gitconfig'), '[user]\n');
    fs.mkdirSync(path.join(home, 'dotfiles'));
    fs.writeFileSync(path.join(dir, 'outside'), 'secret');
  });

  it('finds files and directories by ~/ or by absolute path inside the home', () => {
    const r = resolveFileSync([entry('~/.gitconfig'), entry(path.join(home, 'dotfiles'))], home);
    assert.deepEqual(r.map((x) => [x.kind, x.source]), [['file', fs.realpathSync(path.join(home, '.gitconfig'))], ['dir', fs.realpathSync(path.join(home, 'dotfiles'))]]);
  });

  it('follows a top-level symlink whose target stays inside the home', () => {
    fs.symlinkSync(path.join(home, '.gitconfig'), path.join(home, 'link'));
    assert.equal(resolveFileSync([entry('~/link')], home)[0]!.source, fs.realpathSync(path.join(home, '.gitconfig')));
  });

  it('refuses a symlink that leads outside the home, naming the entry', () => {
    fs.symlinkSync(path.join(dir, 'outside'), path.join(home, 'escape'));
    assert.throws(() => resolveFileSync([entry('~/.gitconfig'), entry('~/escape')], home), fails('INVALID_ARGUMENT', /entry 2 \(host = "~\/escape"\): .* outside your home/, { hint: true }));
  });

  it('refuses an absolute path outside the home, a missing path, and a special file', () => {
    assert.throws(() => resolveFileSync([entry(path.join(dir, 'outside'))], home), fails('INVALID_ARGUMENT', /is not inside your home/));
    assert.throws(() => resolveFileSync([entry('~/nope')], home), fails('INVALID_ARGUMENT', /does not exist/, { hint: true }));
    execFileSync('mkfifo', [path.join(home, 'fifo')]);
    assert.throws(() => resolveFileSync([entry('~/fifo')], home), fails('INVALID_ARGUMENT', /neither a file nor a directory/));
  });
});

/** Unpacks the entries' archive with the system tar into a fresh directory and returns it. */
async function unpack(entries: Parameters<typeof writeTar>[1]): Promise<string> {
  const file = path.join(dir, 'a.tar');
  const fd = fs.openSync(file, 'w');
  await writeTar(fd, entries);
  fs.closeSync(fd);
  const out = fs.mkdtempSync(path.join(dir, 'out-'));
  execFileSync('tar', ['-x', '-f', file, '-C', out, '--no-same-owner']);
  return out;
}

describe('the archive', () => {
  it('is a tar that the system tar unpacks with names, data and modes, also names over 100 bytes', async () => {
    const long = `root/${'d'.repeat(80)}/${'f'.repeat(60)}.txt`;
    const out = await unpack([
      { type: 'dir', name: 'root/.config', mode: 0o700, mtime: 0 },
      { type: 'file', name: 'root/.config/a', mode: 0o640, mtime: 0, data: Buffer.from('hello\n') },
      { type: 'file', name: long, mode: 0o600, mtime: 0, data: Buffer.alloc(1000, 7) },
    ]);
    assert.equal(fs.readFileSync(path.join(out, 'root/.config/a'), 'utf8'), 'hello\n');
    assert.equal(fs.statSync(path.join(out, 'root/.config/a')).mode & 0o777, 0o640);
    assert.equal(fs.statSync(path.join(out, 'root/.config')).mode & 0o777, 0o700);
    assert.deepEqual(fs.readFileSync(path.join(out, long)), Buffer.alloc(1000, 7));
  });

  it('maps entries to their guest paths: files 0600 or the mode given; in a directory 0700 for executables; symlinks inside skipped', async () => {
    const home = path.join(dir, 'home');
    fs.mkdirSync(path.join(home, 'dots/bin'), { recursive: true });
    fs.writeFileSync(path.join(home, '.gitconfig'), 'g', { mode: 0o644 });
    fs.writeFileSync(path.join(home, 'dots/rc'), 'rc', { mode: 0o644 });
    fs.writeFileSync(path.join(home, 'dots/bin/tool'), '#!/bin/sh\n', { mode: 0o755 });
    fs.symlinkSync('/etc/passwd', path.join(home, 'dots/passwd'));
    const resolved = resolveFileSync([
      { host: '~/.gitconfig', guest: '/root/.gitconfig', mode: null },
      { host: '~/dots', guest: '/root/.dots', mode: null },
      { host: '~/.gitconfig', guest: '/root/copy', mode: 0o644 },
    ], home);
    const archive = syncArchive(resolved, 0);
    assert.equal(archive.files, 4);
    assert.equal(archive.skipped.length, 1);
    assert.match(archive.skipped[0]!, /dots\/passwd \(a symlink inside a synced directory is not followed\)/);
    const out = await unpack(archive.entries);
    const mode = (p: string) => fs.statSync(path.join(out, p)).mode & 0o777;
    assert.deepEqual([mode('root/.gitconfig'), mode('root/.dots/rc'), mode('root/.dots/bin/tool'), mode('root/copy'), mode('root/.dots')], [0o600, 0o600, 0o700, 0o644, 0o700]);
    assert.equal(fs.existsSync(path.join(out, 'root/.dots/passwd')), false);
  });

  it("skips a file inside a directory that would land on banger's own key", () => {
    const home = path.join(dir, 'home');
    fs.mkdirSync(path.join(home, '.ssh'), { recursive: true });
    fs.writeFileSync(path.join(home, '.ssh/authorized_keys'), 'theirs');
    fs.writeFileSync(path.join(home, '.ssh/config'), 'Host *');
    const archive = syncArchive(resolveFileSync([{ host: '~/.ssh', guest: '/root/.ssh', mode: null }], home), 0);
    assert.deepEqual(archive.entries.map((e) => e.name), ['root/.ssh', 'root/.ssh/config']);
    assert.match(archive.skipped[0]!, /banger's own key/);
  });

  it('refuses more than the size cap, naming the entry', () => {
    const home = path.join(dir, 'home');
    fs.mkdirSync(home);
    fs.writeFileSync(path.join(home, 'big'), '');
    fs.truncateSync(path.join(home, 'big'), FILE_SYNC_MAX_BYTES + 1);
    assert.throws(() => syncArchive(resolveFileSync([{ host: '~/big', guest: '/root/big', mode: null }], home), 0), fails('INVALID_ARGUMENT', /entry 1 \(host = "~\/big"\).*more than/, { hint: true }));
  });
});

describe('sendFileSync', () => {
  const target: SshTarget = { vmId: 'abc', name: 'web', ip: '172.30.0.2', user: 'root', keyPath: '/k', knownHostsPath: '/kh', hostKeyAlias: 'banger-abc', controlPath: '/c', netns: null, workdir: '/root' };
  const archive = { entries: [{ type: 'file' as const, name: 'root/a', mode: 0o600, mtime: 0, data: Buffer.from('A') }], files: 1, bytes: 1, skipped: [] };

  it("pipes the archive into tar -x at / in the guest over banger's ssh, and leaves no archive behind", async () => {
    const runner = new FakeProcessRunner();
    let received: Buffer | null = null;
    runner.on('ssh', ({ options }) => {
      received = fs.readFileSync(options.stdinFd!);
      return { code: 0 };
    });
    await sendFileSync({ runner, target, archive, scratch: dir });
    const call = runner.callsTo('ssh')[0]!;
    assert.equal(call.args.at(-1), 'tar -x -f - -C / --no-overwrite-dir');
    assert.ok(call.args.includes('root@172.30.0.2'));
    assert.ok(call.args.includes('HostKeyAlias=banger-abc'));
    const out = path.join(dir, 'x');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(dir, 'got.tar'), received!);
    execFileSync('tar', ['-x', '-f', path.join(dir, 'got.tar'), '-C', out]);
    assert.equal(fs.readFileSync(path.join(out, 'root/a'), 'utf8'), 'A');
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f === 'file-sync.tar'), []);
  });

  it('a failing tar in the guest is TOOL_FAILED with its stderr and a hint', async () => {
    const runner = new FakeProcessRunner().on('ssh', () => ({ code: 2, stderr: 'tar: root/a: Cannot open: No space left on device' }));
    await assert.rejects(sendFileSync({ runner, target, archive, scratch: dir }), fails('TOOL_FAILED', /No space left on device/, { hint: true }));
  });
});

describe('a create with [[file_sync]]', { timeout: 30_000 }, () => {
  it('copies the files into the guest once ssh answers, on the first boot only', async () => {
    const h = vmServiceHarness({ configText: '[[file_sync]]\nhost = "~/.gitconfig"\nguest = "~/.gitconfig"\n' });
    try {
      fs.writeFileSync(path.join(h.home, '.gitconfig'), '[user]\n');
      const { ctx, events } = callContext();
      await h.service.create({ name: 'web' }, ctx);
      const commands = h.runner.callsTo('ssh').map((c) => c.args.at(-1));
      assert.deepEqual(commands, ['true', 'tar -x -f - -C / --no-overwrite-dir']);
      assert.deepEqual(events.map((e) => e.stage).slice(-2), ['ssh', 'files']);
      await h.service.stop('web');
      await h.service.start('web', { waitSsh: true }, callContext().ctx);
      assert.equal(h.runner.callsTo('ssh').filter((c) => c.args.at(-1)!.startsWith('tar')).length, 1, 'not again on a later boot');
    } finally {
      h.dispose();
    }
  });

  it('copies on the first start of a VM created with --no-start', async () => {
    const h = vmServiceHarness({ configText: '[[file_sync]]\nhost = "~/.gitconfig"\nguest = "~/.gitconfig"\n' });
    try {
      fs.writeFileSync(path.join(h.home, '.gitconfig'), '[user]\n');
      await h.service.create({ name: 'web', start: false }, callContext().ctx);
      assert.equal(h.runner.callsTo('ssh').length, 0);
      await h.service.start('web', { waitSsh: true }, callContext().ctx);
      assert.equal(h.runner.callsTo('ssh').at(-1)!.args.at(-1), 'tar -x -f - -C / --no-overwrite-dir');
    } finally {
      h.dispose();
    }
  });

  it('refuses an entry that breaks a rule before any disk or tap exists, naming it', async () => {
    const h = vmServiceHarness({ configText: '[[file_sync]]\nhost = "~/missing"\nguest = "~/x"\n' });
    try {
      await assert.rejects(h.service.create({ name: 'web' }, callContext().ctx), (err: unknown) => {
        assert.ok(err instanceof BangerError);
        assert.match(err.message, /entry 1 \(host = "~\/missing"\)/);
        return true;
      });
      assert.deepEqual(h.driver.preparedDisks, []);
      assert.deepEqual(h.ops.calls, []);
      assert.deepEqual(h.store.listVms(), []);
    } finally {
      h.dispose();
    }
  });

  it('a copy that fails undoes the create like any other failure', async () => {
    const h = vmServiceHarness({ configText: '[[file_sync]]\nhost = "~/.gitconfig"\nguest = "~/.gitconfig"\n' });
    try {
      fs.writeFileSync(path.join(h.home, '.gitconfig'), '[user]\n');
      h.runner.on('ssh', ({ args }) => (args.at(-1)!.startsWith('tar') ? { code: 2, stderr: 'tar: broken' } : { code: 0 }));
      await assert.rejects(h.service.create({ name: 'web' }, callContext().ctx), fails('TOOL_FAILED', /tar: broken/));
      assert.deepEqual(h.store.listVms(), []);
      assert.deepEqual([...h.ops.taps], []);
    } finally {
      h.dispose();
    }
  });
});
