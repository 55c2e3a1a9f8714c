import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import type { SshTarget } from '../../src/protocol/methods.ts';
import { shellQuote, sshCloseMasterCommand, sshCommand } from '../../src/protocol/ssh-command.ts';

const target: SshTarget = {
  vmId: '0123456789ab',
  name: 'brisk-otter',
  ip: '172.30.0.2',
  user: 'root',
  keyPath: '/s/ssh/id_ed25519',
  knownHostsPath: '/s/vms/0123456789ab/known_hosts',
  hostKeyAlias: 'banger-0123456789ab',
  netns: null, workdir: '/root',
};

/** What a POSIX shell makes of the quoted words (run locally with /bin/sh; nothing leaves the machine). */
function throughShell(words: string[]): string[] {
  const out = execFileSync('/bin/sh', ['-c', `for a in ${words.map(shellQuote).join(' ')}; do printf '%s\\0' "$a"; done`], { encoding: 'utf8' });
  return out.split('\0').slice(0, -1);
}

function optionValues(args: string[]): string[] {
  return args.flatMap((a, i) => (a === '-o' ? [args[i + 1]!] : []));
}

describe('shellQuote', () => {
  it('leaves safe words bare', () => {
    for (const w of ['ls', '-la', '/tmp/x.txt', 'a=b', 'user@host:1', '50%', 'a,b+c']) assert.equal(shellQuote(w), w);
  });

  it('quotes everything else', () => {
    assert.equal(shellQuote('exit 7'), "'exit 7'");
    assert.equal(shellQuote(''), "''");
    assert.equal(shellQuote("it's"), "'it'\\''s'");
    assert.equal(shellQuote('$HOME'), "'$HOME'");
  });

  it('survives a real shell unchanged, whatever the word', () => {
    const words = ['sh', '-c', 'exit 7', "it's", '"double"', '$HOME', '`id`', 'a\\b', 'two  spaces', 'new\nline', '', '*', ';', '&&', "'", "''"];
    assert.deepEqual(throughShell(words), words);
  });
});

describe('sshCommand', () => {
  it('pins the host key and ignores user and global ssh config', () => {
    const { command, args } = sshCommand(target, { tty: false });
    assert.equal(command, 'ssh');
    assert.deepEqual(args.slice(0, 2), ['-F', '/dev/null']);
    assert.equal(args[args.indexOf('-i') + 1], '/s/ssh/id_ed25519');
    const options = optionValues(args);
    for (const o of [
      'IdentitiesOnly=yes',
      'UserKnownHostsFile=/s/vms/0123456789ab/known_hosts',
      'GlobalKnownHostsFile=/dev/null',
      'StrictHostKeyChecking=yes',
      'HostKeyAlias=banger-0123456789ab',
    ]) assert.ok(options.includes(o), o);
    assert.ok(!options.some((o) => /StrictHostKeyChecking=(no|accept-new)/.test(o)));
    assert.equal(args.at(-1), 'root@172.30.0.2');
  });

  it('asks for a terminal only when told to', () => {
    assert.ok(sshCommand(target, { tty: true }).args.includes('-t'));
    assert.ok(!sshCommand(target, { tty: true }).args.includes('-T'));
    assert.ok(sshCommand(target, { tty: false }).args.includes('-T'));
    assert.ok(!sshCommand(target, { tty: false }).args.includes('-t'));
  });

  it('adds BatchMode and ConnectTimeout for the daemon checks', () => {
    const options = optionValues(sshCommand(target, { tty: false, batch: true, connectTimeoutSec: 2 }).args);
    assert.ok(options.includes('BatchMode=yes'));
    assert.ok(options.includes('ConnectTimeout=2'));
    const plain = optionValues(sshCommand(target, { tty: true }).args);
    assert.ok(!plain.some((o) => o.startsWith('BatchMode') || o.startsWith('ConnectTimeout')));
  });

  it('sends the remote command as one quoted string after --, following the destination', () => {
    const { args } = sshCommand(target, { tty: false, command: ['sh', '-c', 'exit 7'] });
    const dest = args.indexOf('root@172.30.0.2');
    assert.deepEqual(args.slice(dest), ['root@172.30.0.2', '--', "sh -c 'exit 7'"]);
    assert.deepEqual(throughShell(['sh', '-c', 'exit 7']), ['sh', '-c', 'exit 7']);
  });

  it('has no -- for an interactive shell', () => {
    assert.ok(!sshCommand(target, { tty: true, command: [] }).args.includes('--'));
  });

  it('runs ssh inside the network namespace when there is one', () => {
    const plain = sshCommand(target, { tty: false, command: ['true'] });
    const inNs = sshCommand({ ...target, netns: 'sandbox' }, { tty: false, command: ['true'] });
    assert.equal(inNs.command, 'ip');
    assert.deepEqual(inNs.args, ['netns', 'exec', 'sandbox', 'ssh', ...plain.args]);
  });
});

describe('shared ssh connection', () => {
  const shared: SshTarget = { ...target, controlPath: '/s/vms/0123456789ab/ssh.ctl' };

  it('the readiness check opens a persistent master on the VM control socket', () => {
    const opts = optionValues(sshCommand(shared, { tty: false, batch: true, control: 'master', command: ['true'] }).args);
    assert.ok(opts.includes('ControlPath=/s/vms/0123456789ab/ssh.ctl'));
    assert.ok(opts.includes('ControlMaster=auto'));
    assert.ok(opts.some((o) => /^ControlPersist=\d+$/.test(o)));
  });

  it('clients reuse it and never become a master themselves', () => {
    const opts = optionValues(sshCommand(shared, { tty: true, control: 'reuse' }).args);
    assert.ok(opts.includes('ControlPath=/s/vms/0123456789ab/ssh.ctl'));
    assert.ok(opts.includes('ControlMaster=no'));
    assert.ok(!opts.some((o) => o.startsWith('ControlPersist')));
  });

  it('adds nothing without a control path or a control mode', () => {
    assert.ok(!optionValues(sshCommand(target, { tty: false, control: 'master' }).args).some((o) => o.startsWith('Control')));
    assert.ok(!optionValues(sshCommand(shared, { tty: false }).args).some((o) => o.startsWith('Control')));
  });

  it('closing the master talks only to the control socket', () => {
    assert.equal(sshCloseMasterCommand(target), null);
    const close = sshCloseMasterCommand(shared)!;
    assert.equal(close.command, 'ssh');
    assert.deepEqual(close.args.slice(-3), ['-O', 'exit', 'root@172.30.0.2']);
    assert.ok(close.args.includes('ControlPath=/s/vms/0123456789ab/ssh.ctl'));
  });
});
