// A stand-in for systemctl on hosts where systemd is not PID 1 (these test machines), written from systemctl(1)
// and systemd.service(5)/systemd.kill(5)/systemd.exec(5) for the part banger uses: daemon-reload; enable and
// disable (with --now) through WantedBy= links in TARGET.wants/; start, stop, restart; show -p ActiveState, SubState,
// MainPID. Starting a unit runs its ExecStart= (double quotes honoured) with its Environment= lines, as its User=
// and Group= (through setpriv), detached, output appended to STATE/UNIT.log. Stopping it honours KillMode=process:
// SIGTERM to the main process only, then waiting for it; with SendSIGKILL=no it never escalates, so other
// processes of the unit (a VM's QEMU) live on. Every call is appended to STATE/calls.log.
//
//   FAKE_SYSTEMCTL_UNITS=/etc/systemd/system FAKE_SYSTEMCTL_STATE=/some/dir node fake-systemctl.ts VERB ARGS...
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const unitDir = process.env.FAKE_SYSTEMCTL_UNITS!;
const stateDir = process.env.FAKE_SYSTEMCTL_STATE!;
fs.mkdirSync(stateDir, { recursive: true });
const args = process.argv.slice(2);
fs.appendFileSync(path.join(stateDir, 'calls.log'), `${args.join(' ')}\n`);

function fail(message: string, code = 1): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

interface Unit { service: Map<string, string[]>; install: Map<string, string[]> }

function readUnit(name: string): Unit {
  const file = path.join(unitDir, name);
  if (!fs.existsSync(file)) fail(`Unit ${name} not found.`, 5);
  const unit: Unit = { service: new Map(), install: new Map() };
  let section = '';
  for (const raw of fs.readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      continue;
    }
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    const target = section === 'Service' ? unit.service : section === 'Install' ? unit.install : null;
    if (target) target.set(key, [...(target.get(key) ?? []), line.slice(eq + 1)]);
  }
  return unit;
}

/** systemd's splitting of a command line: words, with "double quoted" ones (and \" inside them). */
function splitWords(text: string): string[] {
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m; (m = re.exec(text)); ) words.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1').replace(/%%/g, '%') : m[2]!);
  return words;
}

const stateFile = (name: string): string => path.join(stateDir, `${name}.json`);
const mainPid = (name: string): number => {
  try {
    const pid = (JSON.parse(fs.readFileSync(stateFile(name), 'utf8')) as { pid: number }).pid;
    process.kill(pid, 0);
    return pid;
  } catch {
    return 0;
  }
};

function start(name: string): void {
  if (mainPid(name)) return;
  const unit = readUnit(name);
  const [program, ...argv] = splitWords(unit.service.get('ExecStart')?.[0] ?? fail(`${name} has no ExecStart=`));
  const env: NodeJS.ProcessEnv = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
  for (const e of unit.service.get('Environment') ?? []) for (const word of splitWords(e)) env[word.slice(0, word.indexOf('='))] = word.slice(word.indexOf('=') + 1);
  const user = unit.service.get('User')?.[0];
  const group = unit.service.get('Group')?.[0];
  const command = user ? ['setpriv', `--reuid=${user}`, `--regid=${group ?? user}`, '--init-groups', '--', program!, ...argv] : [program!, ...argv];
  const log = fs.openSync(path.join(stateDir, `${name}.log`), 'a');
  const child = spawn(command[0]!, command.slice(1), { detached: true, stdio: ['ignore', log, log], env });
  child.unref();
  fs.writeFileSync(stateFile(name), JSON.stringify({ pid: child.pid }));
}

function stop(name: string): void {
  const unit = readUnit(name);
  const pid = mainPid(name);
  fs.rmSync(stateFile(name), { force: true });
  if (!pid) return;
  if (unit.service.get('KillMode')?.[0] !== 'process') fail(`${name}: this stand-in only does KillMode=process`);
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    if (Date.now() > deadline) {
      if (unit.service.get('SendSIGKILL')?.[0] === 'no') fail(`${name}: main process ${pid} did not exit on SIGTERM (SendSIGKILL=no)`);
      process.kill(pid, 'SIGKILL');
      return;
    }
    spawnSync('sleep', ['0.05']);
  }
}

function wantsLink(name: string): string[] {
  return (readUnit(name).install.get('WantedBy') ?? []).map((target) => path.join(unitDir, `${target}.wants`, name));
}

const verb = args[0];
const now = args.includes('--now');
const units = args.slice(1).filter((a) => !a.startsWith('-'));
switch (verb) {
  case 'daemon-reload':
    break;
  case 'enable':
    for (const u of units) {
      for (const link of wantsLink(u)) {
        fs.mkdirSync(path.dirname(link), { recursive: true });
        fs.rmSync(link, { force: true });
        fs.symlinkSync(path.join(unitDir, u), link);
      }
      if (now) start(u);
    }
    break;
  case 'disable':
    for (const u of units) {
      if (now) stop(u);
      for (const link of wantsLink(u)) fs.rmSync(link, { force: true });
    }
    break;
  case 'start':
    units.forEach(start);
    break;
  case 'stop':
    units.forEach(stop);
    break;
  case 'restart':
    for (const u of units) {
      stop(u);
      start(u);
    }
    break;
  case 'show': {
    const pid = mainPid(units.at(-1)!);
    process.stdout.write(`ActiveState=${pid ? 'active' : 'inactive'}\nSubState=${pid ? 'running' : 'dead'}\nMainPID=${pid}\n`);
    break;
  }
  default:
    fail(`Unknown command verb ${verb}.`);
}
