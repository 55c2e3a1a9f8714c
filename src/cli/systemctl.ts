// systemctl, as `banger system` runs it: a seam, so tests on hosts where systemd is not PID 1 can put a stand-in
// in its place (the hidden --systemctl flag), and one place that turns its failures into BangerErrors.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { BangerError } from '../protocol/errors.ts';

export interface Systemctl {
  /** Runs `systemctl ARGS`; throws TOOL_FAILED with its command and output when it fails. */
  run(args: string[]): string;
  /** ActiveState, SubState and MainPID of a unit. */
  show(unit: string): { active: string; sub: string; mainPid: number };
}

/**
 * What `systemd-analyze verify` says of unit files: its complaints (it may print them and still exit 0), or null
 * when it has nothing to say or is not installed.
 */
export function systemdVerify(files: string[]): string | null {
  const r = spawnSync('systemd-analyze', ['verify', ...files], { encoding: 'utf8' });
  if (r.error) return null;
  const out = `${r.stderr}${r.stdout}`.trim();
  return out === '' && r.status === 0 ? null : out || `systemd-analyze verify exited ${r.status}`;
}

/** Whether systemd runs as init here (sd_booted's test); without it, systemctl cannot start anything. */
export function systemdIsInit(): boolean {
  return fs.existsSync('/run/systemd/system');
}

/** What PID 1 is, for the message when it is not systemd. */
export function initName(): string {
  try {
    return fs.readFileSync('/proc/1/comm', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

export function systemctlAt(program = 'systemctl'): Systemctl {
  const run = (args: string[]): string => {
    const r = spawnSync(program, args, { encoding: 'utf8', timeout: 120_000 });
    if (r.error) {
      throw new BangerError('MISSING_TOOL', `${program} cannot be run: ${r.error.message}`, { hint: 'systemctl comes from apt-get install systemd' });
    }
    if (r.status !== 0) {
      const out = (r.stderr || r.stdout).trim().split('\n').slice(-6).join('\n');
      throw new BangerError('TOOL_FAILED', `${program} ${args.join(' ')} failed (exit ${r.status}):\n${out}`, { hint: `see: journalctl -u ${args.at(-1) ?? 'bangerd.service'}` });
    }
    return r.stdout;
  };
  return {
    run,
    show: (unit) => {
      const props = new Map(run(['show', '-p', 'ActiveState', '-p', 'SubState', '-p', 'MainPID', unit]).split('\n').map((l) => l.split('=', 2) as [string, string]));
      return { active: props.get('ActiveState') ?? 'unknown', sub: props.get('SubState') ?? 'unknown', mainPid: Number(props.get('MainPID') ?? 0) };
    },
  };
}
