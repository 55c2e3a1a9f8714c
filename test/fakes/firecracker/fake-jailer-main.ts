// A fake jailer: checks its arguments as docs/jailer.md (v1.16.1) describes them, builds
// <chroot-base-dir>/<exec file name>/<id>/root, copies the exec file into it, and starts it there as
// `<exec file name> --id=<id> --start-time-us=... --start-time-cpu-us=... [args after --]`, writing the child's pid
// to <chroot>/<exec file name>.pid (create_new, as the jailer does). It cannot chroot, switch ids, join a network
// namespace or write cgroups without being the real thing: it records what it was asked for in
// $FAKE_FC_RECORD_DIR/jailer-<id>.jsonl instead. Like the real jailer it clears the environment, except
// FAKE_FC_RECORD_DIR, which the fake Firecracker needs to record.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const fail = (message: string): never => {
  process.stderr.write(`fake jailer: ${message}\n`);
  process.exit(1);
};

const single = new Map<string, string>();
const multi = new Map<string, string[]>([['cgroup', []], ['resource-limit', []]]);
const flags = new Set<string>();
const VALUED = new Set(['id', 'exec-file', 'uid', 'gid', 'cgroup-version', 'cgroup', 'parent-cgroup', 'chroot-base-dir', 'netns', 'resource-limit']);
const FLAGS = new Set(['daemonize', 'new-pid-ns']);
let extra: string[] = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  if (a === '--') {
    extra = args.slice(i + 1);
    break;
  }
  const name = a.replace(/^--/, '');
  if (FLAGS.has(name)) flags.add(name);
  else if (VALUED.has(name)) {
    const value = args[++i];
    if (value === undefined) fail(`--${name} needs a value`);
    if (multi.has(name)) multi.get(name)!.push(value!);
    else if (single.has(name)) fail(`--${name} given twice`);
    else single.set(name, value!);
  } else fail(`unknown argument ${a}`);
}

const id = single.get('id') ?? fail('--id is required');
if (!/^[a-zA-Z0-9-]{1,64}$/.test(id)) fail(`invalid instance id ${id}: alphanumeric characters and hyphens, at most 64`);
const execFile = single.get('exec-file') ?? fail('--exec-file is required');
let execPath = '';
try {
  execPath = fs.realpathSync(execFile);
} catch {
  fail(`cannot canonicalize ${execFile}`);
}
if (!fs.statSync(execPath).isFile()) fail(`${execPath} is not a file`);
const execName = path.basename(execPath);
for (const n of ['uid', 'gid']) if (!/^\d+$/.test(single.get(n) ?? '')) fail(`--${n} must be a number`);
const cgroupVersion = single.get('cgroup-version') ?? '1';
if (cgroupVersion !== '1' && cgroupVersion !== '2') fail(`invalid cgroup version ${cgroupVersion}`);
for (const cg of multi.get('cgroup')!) {
  const parts = cg.split('=');
  if (parts.length !== 2 || parts[1] === '' || parts[0]!.split('/').some((c) => c === '.' || c === '..' || c === '')) fail(`invalid cgroup ${cg}`);
}
for (const rl of multi.get('resource-limit')!) if (!/^(fsize|no-file)=\d+$/.test(rl)) fail(`invalid resource limit ${rl}`);
const base = single.get('chroot-base-dir') ?? '/srv/jailer';
if (!fs.existsSync(base) || !fs.statSync(base).isDirectory()) fail(`${base} is not a directory`);
const netns = single.get('netns');
if (netns !== undefined && !fs.existsSync(netns)) fail(`cannot open network namespace ${netns}`);

const chroot = path.join(fs.realpathSync(base), execName, id, 'root');
fs.mkdirSync(chroot, { recursive: true });
const inJail = path.join(chroot, execName);
fs.copyFileSync(execPath, inJail);
fs.chmodSync(inJail, 0o755);

const recordDir = process.env.FAKE_FC_RECORD_DIR;
if (recordDir) {
  fs.appendFileSync(path.join(recordDir, `jailer-${id}.jsonl`), `${JSON.stringify({
    argv: args, id, execName, uid: Number(single.get('uid')), gid: Number(single.get('gid')), cgroupVersion, cgroups: multi.get('cgroup'),
    parentCgroup: single.get('parent-cgroup') ?? null, netns: netns ?? null, daemonize: flags.has('daemonize'), newPidNs: flags.has('new-pid-ns'), chroot,
  })}\n`);
}

const child = spawn(inJail, [`--id=${id}`, '--start-time-us=1', '--start-time-cpu-us=1', ...extra], {
  detached: flags.has('daemonize'),
  stdio: 'ignore',
  cwd: chroot,
  env: recordDir ? { FAKE_FC_RECORD_DIR: recordDir } : {},
});
fs.writeFileSync(`${inJail}.pid`, String(child.pid), { flag: 'wx' });
if (flags.has('daemonize')) child.unref();
else child.on('exit', (code) => process.exit(code ?? 1));
