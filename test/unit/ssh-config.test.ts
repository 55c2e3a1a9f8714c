// banger ssh-config against a temporary HOME and BANGER_HOME, and the hidden ssh-known-hosts through main() with a
// fake client. The real ssh and ssh-keygen read what they write.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { BLOCK_END, BLOCK_START, bangerBlock, bangerSshConfig, sshConfig, type SshConfigFlags } from '../../src/cli/commands/ssh-config.ts';
import { knownHostsLines, vmNameOf } from '../../src/cli/commands/ssh-known-hosts.ts';
import type { CliContext } from '../../src/cli/context.ts';
import { main } from '../../src/cli/program.ts';
import { BangerError } from '../../src/protocol/errors.ts';
import type { SshTarget } from '../../src/protocol/methods.ts';
import type { BangerClient } from '../../src/sdk/client.ts';
import { BIN_DIR } from '../../src/system/helper-command.ts';
import { fails } from '../fakes/expect-error.ts';

const run = promisify(execFile);

interface Env {
  dir: string;
  env: NodeJS.ProcessEnv;
  sshDir: string;
  config: string;
  included: string;
  includeLine: string;
}

function tempEnv(): Env {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-sshconfig-'));
  const home = path.join(dir, 'home');
  fs.mkdirSync(home);
  const bangerHome = path.join(dir, 'bh');
  const included = path.join(bangerHome, 'state', 'ssh', 'ssh_config');
  return { dir, env: { HOME: home, BANGER_HOME: bangerHome }, sshDir: path.join(home, '.ssh'), config: path.join(home, '.ssh', 'config'), included, includeLine: `Include ${included}` };
}

/** Runs the command with its output captured; `out` is stdout as one string. */
async function sshConfigRun(e: Env, flags: SshConfigFlags): Promise<{ status: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const ctx: CliContext = {
    output: { out: (t) => out.push(t), err: (t) => err.push(t) },
    client: () => assert.fail('ssh-config needs no daemon'),
    guestCommand: null,
    exit: () => assert.fail('no exit'),
  };
  const status = await sshConfig(ctx, flags, e.env);
  return { status, out: out.join('\n'), err: err.join('\n') };
}

const modeOf = (file: string): number => fs.statSync(file).mode & 0o777;

const USER_CONFIG = 'Host github.com\n  User git\n\n# a comment with ünïcode\r\nHost *\n  ServerAliveInterval 30';

describe('banger ssh-config', () => {
  let e: Env;
  beforeEach(() => {
    e = tempEnv();
  });
  afterEach(() => {
    fs.rmSync(e.dir, { recursive: true, force: true });
  });

  it('without flags prints the Include line and what to do with it, writes banger\'s file, and leaves ~/.ssh alone', async () => {
    const r = await sshConfigRun(e, {});
    assert.equal(r.status, 0);
    const [line, note] = r.out.split('\n');
    assert.equal(line, e.includeLine);
    assert.match(note!, /^# put this line at the top of .*\.ssh\/config \(or run: banger ssh-config --install\)/);
    assert.equal(r.out.split('\n').length, 2);
    assert.equal(fs.existsSync(e.sshDir), false);
    const written = fs.readFileSync(e.included, 'utf8');
    assert.equal(written, bangerSshConfig({ keyPath: path.join(path.dirname(e.included), 'id_ed25519'), banger: path.join(BIN_DIR, 'banger') }));
    assert.equal(modeOf(e.included), 0o600);
  });

  it('writes a Host *.vm block with banger\'s key, its ProxyCommand and KnownHostsCommand, and strict checking against them only', async () => {
    await sshConfigRun(e, {});
    const banger = path.join(BIN_DIR, 'banger');
    assert.equal(fs.readFileSync(e.included, 'utf8'), [
      '# Written by banger. `banger ssh-config --uninstall` removes the Include that points here.',
      '# banger ssh-config rewrites this file each time it runs; put settings of your own in ~/.ssh/config.',
      'Host *.vm',
      '  User root',
      `  IdentityFile ${path.join(path.dirname(e.included), 'id_ed25519')}`,
      '  IdentitiesOnly yes',
      `  ProxyCommand ${banger} ssh-proxy %n %p`,
      `  KnownHostsCommand ${banger} ssh-known-hosts %H`,
      '  UserKnownHostsFile /dev/null',
      '  GlobalKnownHostsFile /dev/null',
      '  StrictHostKeyChecking yes',
      '  LogLevel ERROR',
      '',
    ].join('\n'));
  });

  it('writes its file again each time, over edits', async () => {
    await sshConfigRun(e, {});
    const first = fs.readFileSync(e.included, 'utf8');
    fs.writeFileSync(e.included, 'Host *.vm\n  User mallory\n');
    await sshConfigRun(e, { install: true });
    assert.equal(fs.readFileSync(e.included, 'utf8'), first);
  });

  it('--install into an empty HOME makes ~/.ssh (0700) and config (0600) holding only the block', async () => {
    const r = await sshConfigRun(e, { install: true });
    assert.equal(r.status, 0);
    assert.match(r.out, /^added "Include .*" at the top of .*\/\.ssh\/config: ssh NAME\.vm now reaches the running VM NAME$/);
    assert.equal(fs.readFileSync(e.config, 'utf8'), `${BLOCK_START}\n${e.includeLine}\n${BLOCK_END}\n`);
    assert.equal(modeOf(e.sshDir), 0o700);
    assert.equal(modeOf(e.config), 0o600);
    assert.deepEqual(fs.readdirSync(e.sshDir), ['config'], 'no temporary file is left behind');
  });

  it('--install a second time changes nothing and says so', async () => {
    await sshConfigRun(e, { install: true });
    const before = fs.statSync(e.config);
    const bytes = fs.readFileSync(e.config);
    const r = await sshConfigRun(e, { install: true, json: true });
    assert.deepEqual(JSON.parse(r.out), { includeLine: e.includeLine, configPath: e.config, installed: true, changed: false });
    const text = await sshConfigRun(e, { install: true });
    assert.match(text.out, /already includes banger's ssh settings; nothing changed/);
    assert.deepEqual(fs.readFileSync(e.config), bytes);
    assert.equal(fs.statSync(e.config).ino, before.ino, 'the file was not rewritten');
  });

  it('--install puts the block above existing content, which it keeps byte for byte with its mode', async () => {
    fs.mkdirSync(e.sshDir, { mode: 0o700 });
    fs.writeFileSync(e.config, USER_CONFIG);
    fs.chmodSync(e.config, 0o640);
    const r = await sshConfigRun(e, { install: true, json: true });
    assert.deepEqual(JSON.parse(r.out), { includeLine: e.includeLine, configPath: e.config, installed: true, changed: true });
    assert.deepEqual(fs.readFileSync(e.config), Buffer.concat([Buffer.from(bangerBlock(e.includeLine)), Buffer.from(USER_CONFIG)]));
    assert.equal(modeOf(e.config), 0o640);
  });

  it('--uninstall restores the original bytes exactly, and keeps the mode', async () => {
    fs.mkdirSync(e.sshDir, { mode: 0o700 });
    fs.writeFileSync(e.config, USER_CONFIG);
    fs.chmodSync(e.config, 0o644);
    await sshConfigRun(e, { install: true });
    const r = await sshConfigRun(e, { uninstall: true });
    assert.equal(r.out, `removed banger's Include from ${e.config}`);
    assert.deepEqual(fs.readFileSync(e.config), Buffer.from(USER_CONFIG));
    assert.equal(modeOf(e.config), 0o644);
    // banger's own file stays: --uninstall deletes nothing.
    assert.ok(fs.existsSync(e.included));
  });

  it('--uninstall when not installed changes nothing and says so, and creates nothing', async () => {
    let r = await sshConfigRun(e, { uninstall: true, json: true });
    assert.deepEqual(JSON.parse(r.out), { includeLine: e.includeLine, configPath: e.config, installed: false, changed: false });
    r = await sshConfigRun(e, { uninstall: true });
    assert.equal(r.out, `${e.config} does not exist; nothing changed`);
    assert.equal(fs.existsSync(e.sshDir), false);
    fs.mkdirSync(e.sshDir, { mode: 0o700 });
    fs.writeFileSync(e.config, USER_CONFIG);
    const ino = fs.statSync(e.config).ino;
    r = await sshConfigRun(e, { uninstall: true });
    assert.equal(r.out, `${e.config} has no banger block; nothing changed`);
    assert.deepEqual(fs.readFileSync(e.config), Buffer.from(USER_CONFIG));
    assert.equal(fs.statSync(e.config).ino, ino);
  });

  it('--install replaces a block with another Include (BANGER_HOME moved) and puts it first', async () => {
    fs.mkdirSync(e.sshDir, { mode: 0o700 });
    const stale = bangerBlock('Include /old/banger/state/ssh/ssh_config');
    fs.writeFileSync(e.config, `${USER_CONFIG}\n${stale}# after\n`);
    await sshConfigRun(e, { install: true });
    assert.equal(fs.readFileSync(e.config, 'utf8'), `${bangerBlock(e.includeLine)}${USER_CONFIG}\n# after\n`);
  });

  it('--install and the status see the block wherever the user moved it', async () => {
    fs.mkdirSync(e.sshDir, { mode: 0o700 });
    const moved = `# mine first\n${bangerBlock(e.includeLine)}${USER_CONFIG}`;
    fs.writeFileSync(e.config, moved);
    assert.equal(JSON.parse((await sshConfigRun(e, { json: true })).out).installed, true);
    assert.equal(JSON.parse((await sshConfigRun(e, { install: true, json: true })).out).changed, false);
    assert.equal(fs.readFileSync(e.config, 'utf8'), moved);
    await sshConfigRun(e, { uninstall: true });
    assert.equal(fs.readFileSync(e.config, 'utf8'), `# mine first\n${USER_CONFIG}`);
  });

  it('writes through a symlinked ~/.ssh/config (a dotfiles checkout) and keeps the link', async () => {
    fs.mkdirSync(e.sshDir, { mode: 0o700 });
    const real = path.join(e.dir, 'dotfiles-ssh-config');
    fs.writeFileSync(real, USER_CONFIG, { mode: 0o600 });
    fs.symlinkSync(real, e.config);
    await sshConfigRun(e, { install: true });
    assert.ok(fs.lstatSync(e.config).isSymbolicLink());
    assert.equal(fs.readFileSync(real, 'utf8'), `${bangerBlock(e.includeLine)}${USER_CONFIG}`);
    await sshConfigRun(e, { uninstall: true });
    assert.equal(fs.readFileSync(real, 'utf8'), USER_CONFIG);
  });

  it('refuses markers that do not pair up, changing nothing', async () => {
    fs.mkdirSync(e.sshDir, { mode: 0o700 });
    const broken = `${BLOCK_START}\nInclude /x\nHost a\n`;
    fs.writeFileSync(e.config, broken);
    for (const flags of [{ install: true }, { uninstall: true }]) {
      await assert.rejects(sshConfigRun(e, flags), (err: unknown) => {
        fails('INVALID_ARGUMENT', /has "# >>> banger >>>" without "# <<< banger <<<" after it/, { hint: true })(err);
        assert.match((err as BangerError).hint!, /by hand, then run: banger ssh-config --install/);
        return true;
      });
    }
    assert.equal(fs.readFileSync(e.config, 'utf8'), broken);
  });

  it('refuses --install with --uninstall, before writing anything', async () => {
    await assert.rejects(sshConfigRun(e, { install: true, uninstall: true }), fails('INVALID_ARGUMENT', /do not go together/, { hint: true }));
    assert.equal(fs.existsSync(e.included), false);
  });

  it('refuses a BANGER_HOME that ssh options cannot carry', async () => {
    e.env.BANGER_HOME = path.join(e.dir, 'with space');
    await assert.rejects(sshConfigRun(e, { install: true }), fails('INVALID_ARGUMENT', /contains " "/, { hint: true }));
    assert.equal(fs.existsSync(e.sshDir), false);
  });

  it('reports a ~/.ssh/config it cannot use, with what to check', async () => {
    // A file where ~/.ssh should be: no user (root included) can read or write a config under it.
    fs.writeFileSync(e.sshDir, 'not a directory');
    await assert.rejects(sshConfigRun(e, { install: true }), (err: unknown) => {
      fails('INVALID_ARGUMENT', /cannot read .*\.ssh\/config: ENOTDIR/)(err);
      assert.match((err as BangerError).hint!, /check the owner and mode of .*\.ssh and the files in it \(ls -la .*\.ssh\)/);
      return true;
    });
    assert.equal(fs.readFileSync(e.sshDir, 'utf8'), 'not a directory');
  });

  it('quotes paths with spaces as ssh_config and the shell want them, and doubles % in commands', () => {
    const text = bangerSshConfig({ keyPath: '/var/lib/b ssh/id_ed25519', banger: "/opt/my banger's 100%/bin/banger" });
    assert.match(text, /^ {2}IdentityFile "\/var\/lib\/b ssh\/id_ed25519"$/m);
    assert.match(text, /^ {2}ProxyCommand '\/opt\/my banger'\\''s 100%%\/bin\/banger' ssh-proxy %n %p$/m);
    assert.match(text, /^ {2}KnownHostsCommand '\/opt\/my banger'\\''s 100%%\/bin\/banger' ssh-known-hosts %H$/m);
  });

  it('writes what the real ssh reads: NAME.vm gets banger\'s settings, other hosts do not', async () => {
    fs.mkdirSync(e.sshDir, { mode: 0o700 });
    fs.writeFileSync(e.config, USER_CONFIG, { mode: 0o600 });
    await sshConfigRun(e, { install: true });
    // -F: ssh finds ~ through the passwd database, not HOME.
    const settings = async (host: string): Promise<Map<string, string>> => {
      const { stdout } = await run('ssh', ['-F', e.config, '-G', host]);
      return new Map(stdout.split('\n').map((l) => [l.slice(0, l.indexOf(' ')), l.slice(l.indexOf(' ') + 1)]));
    };
    const vm = await settings('web.vm');
    assert.equal(vm.get('user'), 'root');
    assert.equal(vm.get('proxycommand'), `${path.join(BIN_DIR, 'banger')} ssh-proxy %n %p`);
    assert.equal(vm.get('knownhostscommand'), `${path.join(BIN_DIR, 'banger')} ssh-known-hosts %H`);
    assert.equal(vm.get('identitiesonly'), 'yes');
    assert.equal(vm.get('userknownhostsfile'), '/dev/null');
    const other = await settings('github.com');
    assert.equal(other.get('user'), 'git');
    assert.equal(other.get('proxycommand'), undefined);
    assert.equal(other.get('serveraliveinterval'), '30');
  });
});

describe('banger ssh-known-hosts', () => {
  let dir: string;
  let knownHosts: string;
  const target = (over: Partial<SshTarget> = {}): SshTarget => ({
    vmId: '0123456789ab', name: 'web', ip: '172.30.0.2', user: 'root', keyPath: '/k', knownHostsPath: knownHosts,
    hostKeyAlias: 'banger-0123456789ab', netns: null, workdir: '/root', ...over,
  });

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-knownhosts-'));
    knownHosts = path.join(dir, 'known_hosts');
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** main(['ssh-known-hosts', host]) against a client whose sshTarget is `sshTarget`. */
  async function knownHostsRun(host: string, sshTarget: (ref: string) => Promise<SshTarget>) {
    const r = { status: -1, out: [] as string[], err: [] as string[], refs: [] as string[], connects: 0 };
    const client = { sshTarget: async (ref: string) => (r.refs.push(ref), sshTarget(ref)), close: () => undefined } as unknown as BangerClient;
    r.status = await main(['ssh-known-hosts', host], {
      output: { out: (t) => r.out.push(t), err: (t) => r.err.push(t) },
      connect: async () => {
        r.connects++;
        return client;
      },
      exit: () => assert.fail('no exit'),
    });
    return r;
  }

  it('prints the VM\'s pinned key for NAME.vm, under that name, that the real ssh-keygen finds', async () => {
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'banger-0123456789ab', '-f', path.join(dir, 'hostkey')]);
    const [type, key] = fs.readFileSync(path.join(dir, 'hostkey.pub'), 'utf8').split(' ');
    fs.writeFileSync(knownHosts, `banger-0123456789ab ${type} ${key}\n`);
    const r = await knownHostsRun('web.vm', async () => target());
    assert.equal(r.status, 0);
    assert.deepEqual(r.refs, ['web']);
    assert.deepEqual(r.out, [`web.vm ${type} ${key}`]);
    assert.deepEqual(r.err, []);
    const printed = path.join(dir, 'printed');
    fs.writeFileSync(printed, `${r.out.join('\n')}\n`);
    const found = await run('ssh-keygen', ['-F', 'web.vm', '-f', printed]);
    assert.match(found.stdout, /web\.vm ssh-ed25519 /);
  });

  it('answers ssh\'s [NAME.vm]:PORT form and any case, asking for the lowercase name', async () => {
    fs.writeFileSync(knownHosts, 'banger-0123456789ab ssh-ed25519 AAAAkey\n');
    const r = await knownHostsRun('[Web.VM]:2222', async () => target());
    assert.deepEqual(r.refs, ['web']);
    assert.deepEqual(r.out, ['[Web.VM]:2222 ssh-ed25519 AAAAkey']);
  });

  for (const code of ['VM_NOT_FOUND', 'VM_BAD_STATE'] as const) {
    it(`prints nothing and exits 0 when the daemon says ${code}`, async () => {
      const r = await knownHostsRun('ghost.vm', async () => {
        throw new BangerError(code, 'no');
      });
      assert.deepEqual([r.status, r.out, r.err], [0, [], []]);
    });
  }

  it('prints nothing for a VM whose id, not name, the ref matched', async () => {
    fs.writeFileSync(knownHosts, 'banger-0123456789ab ssh-ed25519 AAAAkey\n');
    const r = await knownHostsRun('0123.vm', async () => target());
    assert.deepEqual([r.status, r.out], [0, []]);
  });

  it('asks no daemon for a host outside .vm', async () => {
    const r = await knownHostsRun('github.com', async () => assert.fail('not asked'));
    assert.deepEqual([r.status, r.out, r.connects], [0, [], 0]);
  });

  it('fails (so ssh shows why) when the daemon cannot be reached', async () => {
    const r = await knownHostsRun('web.vm', async () => {
      throw new BangerError('DAEMON_UNAVAILABLE', 'bangerd is not running');
    });
    assert.equal(r.status, 15);
    assert.match(r.err.join('\n'), /bangerd is not running/);
    assert.deepEqual(r.out, []);
  });

  it('says on stderr when the VM has no known_hosts, and prints no key', async () => {
    const r = await knownHostsRun('web.vm', async () => target());
    assert.deepEqual([r.status, r.out], [0, []]);
    assert.match(r.err.join('\n'), /VM web has no pinned host key/);
  });

  it('takes only the lines pinned under the VM\'s alias', () => {
    const text = '# comment\n\nbanger-other ssh-ed25519 AAAAother\n@revoked banger-0123456789ab ssh-ed25519 AAAArevoked\n'
      + 'x,banger-0123456789ab ssh-ed25519 AAAAmine comment\nbanger-0123456789ab ecdsa-sha2-nistp256 AAAAecdsa\r\n';
    assert.deepEqual(knownHostsLines(text, 'banger-0123456789ab', 'web.vm'), ['web.vm ssh-ed25519 AAAAmine', 'web.vm ecdsa-sha2-nistp256 AAAAecdsa']);
  });

  it('reads the VM name from ssh\'s %H', () => {
    assert.equal(vmNameOf('web.vm'), 'web');
    assert.equal(vmNameOf('WEB.VM.'), 'web');
    assert.equal(vmNameOf('[web.vm]:22'), 'web');
    for (const host of ['example.com', 'vm', '.vm', 'a.b.vm', 'web.vm.example.com', '[web.vm]']) assert.equal(vmNameOf(host), null, host);
  });
});
