// KVM or TCG: whether a guest really runs under KVM on this host. Some /dev/kvm (nested, paravirtual) exist but
// cannot run a stock kernel: QEMU either fails at once (an MSR it cannot set) or the guest hangs without a word.
// The decision is made by booting the VM's own kernel into the probe mode of banger's initrd, and it is
// remembered on disk for this host boot, kernel and QEMU binary, whatever the outcome: a hang does not stop
// hanging on the next try. `fresh` asks again.
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../../protocol/errors.ts';
import type { KernelInfo } from '../../protocol/methods.ts';
import { isoNow, SingleFlight, type Clock } from '../../system/clock.ts';
import { DiesWithParentRunner } from '../../system/dies-with-parent.ts';
import { findExecutable } from '../../system/executable.ts';
import { PROBE_MARKER } from '../../system/guest-contract.ts';
import type { ProcessRunner } from '../../system/process.ts';
import type { Accel as ConfigAccel } from '../../system/config.ts';
import { kvmDeviceUsable } from '../../system/kvm-device.ts';
import { guestCmdline } from '../../system/qemu-argv.ts';
import { raceSignal } from '../../system/race-signal.ts';
import type { AccelChoice } from '../driver.ts';

/** A guest under working KVM prints its boot log without pause; this much silence means it hangs. */
export const PROBE_STALL_MS = 3_000;
/** However chatty, a probe that has not reached the marker by then is given up. */
export const PROBE_LIMIT_MS = 20_000;
/** Bump when the probe changes what it tests, so decisions of an older probe are not reused. */
const PROBE_VERSION = 3;

export interface AccelProbeOptions {
  runner: ProcessRunner;
  clock: Clock;
  qemu: string;
  accel: ConfigAccel;
  /** Where decisions are remembered (JSON, one entry per host boot, kernel and QEMU binary). */
  cacheFile: string;
  kvmDevice?: string;
  /** This host boot's id; /proc/sys/kernel/random/boot_id when not given. */
  bootId?: () => string;
  log?: (message: string) => void;
}

interface Remembered extends AccelChoice {
  key: string;
  decidedAt: string;
}

export class AccelProbe {
  private readonly options: AccelProbeOptions;
  private readonly flight = new SingleFlight<string, AccelChoice>();

  constructor(options: AccelProbeOptions) {
    this.options = options;
  }

  /** The decision when it needs no waiting (config, no /dev/kvm, remembered for this boot); null when a probe must run. */
  known(kernel: KernelInfo): AccelChoice | null {
    const immediate = this.immediate();
    if (immediate) return immediate;
    return this.remembered(this.keyOf(kernel));
  }

  /**
   * The decision, probing when nothing is remembered for this boot (or when `fresh`). Callers asking at once share
   * one probe, and a caller that gives up does not stop it for the others.
   */
  async decide(kernel: KernelInfo, options: { signal: AbortSignal; fresh?: boolean }): Promise<AccelChoice> {
    const immediate = this.immediate();
    if (immediate) return immediate;
    const key = this.keyOf(kernel);
    if (!options.fresh) {
      const remembered = this.remembered(key);
      if (remembered) return remembered;
    }
    const probe = this.flight.run(key, async () => {
      const choice = await this.probe(kernel);
      this.remember(key, choice);
      return choice;
    });
    return raceSignal(probe, options.signal, 'cancelled while probing KVM');
  }

  /** Decisions that need no probe. A missing QEMU is reported here, before minutes of image building. */
  private immediate(): AccelChoice | null {
    findExecutable(this.options.qemu);
    const kvmDevice = this.options.kvmDevice ?? '/dev/kvm';
    switch (this.options.accel) {
      case 'tcg':
        return { accel: 'tcg', reason: 'vmm.accel = "tcg" in config' };
      case 'kvm':
        if (!kvmDeviceUsable(kvmDevice)) {
          throw new BangerError('VMM_FAILED', `vmm.accel = "kvm" but ${kvmDevice} is not usable`, { hint: 'set vmm.accel = "auto" in config.toml, or fix the permissions of /dev/kvm' });
        }
        return { accel: 'kvm', reason: 'vmm.accel = "kvm" in config' };
      case 'auto':
        return kvmDeviceUsable(kvmDevice) ? null : { accel: 'tcg', reason: `no usable ${kvmDevice}` };
    }
  }

  /** What decides the outcome: this host boot, the kernel, and the QEMU binary (an upgrade asks again). */
  private keyOf(kernel: KernelInfo): string {
    const qemu = findExecutable(this.options.qemu);
    let binary = qemu;
    try {
      const real = fs.realpathSync(qemu);
      const st = fs.statSync(real);
      binary = `${real}:${st.size}:${Math.trunc(st.mtimeMs)}`;
    } catch {
      // Keep the plain path.
    }
    const boot = (this.options.bootId ?? readBootId)();
    return `v${PROBE_VERSION} boot=${boot} kernel=${kernel.id} qemu=${binary}`;
  }

  private readAll(): Remembered[] {
    try {
      const parsed: unknown = JSON.parse(fs.readFileSync(this.options.cacheFile, 'utf8'));
      return Array.isArray(parsed) ? parsed.filter(isRemembered) : [];
    } catch {
      return [];
    }
  }

  private remembered(key: string): AccelChoice | null {
    const hit = this.readAll().find((r) => r.key === key);
    return hit ? { accel: hit.accel, reason: `${hit.reason}; decided ${hit.decidedAt}` } : null;
  }

  /** Keeps this boot's decisions only; written whole and renamed into place, so a reader never sees half a file. */
  private remember(key: string, choice: AccelChoice): void {
    const boot = key.split(' ')[1];
    const kept = this.readAll().filter((r) => r.key !== key && r.key.split(' ')[1] === boot);
    const all: Remembered[] = [...kept, { key, ...choice, decidedAt: isoNow(this.options.clock) }];
    try {
      fs.mkdirSync(path.dirname(this.options.cacheFile), { recursive: true });
      const tmp = `${this.options.cacheFile}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, `${JSON.stringify(all, null, 2)}\n`);
      fs.renameSync(tmp, this.options.cacheFile);
    } catch (err) {
      // The decision still holds for this daemon's life; the next daemon asks again.
      this.options.log?.(`could not remember the accelerator decision in ${this.options.cacheFile}: ${(err as Error).message}`);
    }
  }

  /**
   * Boots the kernel under KVM with banger's initrd in probe mode and a full boot log on the serial port. The
   * guest prints its marker within a second on a working KVM; QEMU failing, the guest going silent for
   * PROBE_STALL_MS, or PROBE_LIMIT_MS passing decides TCG. The probe dies with bangerd (parent-death signal).
   */
  private async probe(kernel: KernelInfo): Promise<AccelChoice> {
    const { clock } = this.options;
    const runner = new DiesWithParentRunner(this.options.runner);
    const qemu = findExecutable(this.options.qemu);
    const started = clock.now();
    let lastOutput = started;
    let stalled: 'silent' | 'limit' | null = null;
    let lastLine = '';
    const stop = new AbortController();
    const run = runner.run(
      qemu,
      ['-M', 'microvm', '-accel', 'kvm', '-cpu', 'host', '-m', '256M', '-kernel', kernel.kernelPath,
        '-initrd', kernel.initrdPath, '-append', guestCmdline({ accel: 'kvm', tscKhz: null, probe: true }), '-nodefaults', '-no-user-config',
        '-display', 'none', '-serial', 'stdio', '-no-reboot'],
      {
        signal: stop.signal,
        onLine: (line, stream) => {
          if (stream !== 'stdout') return;
          lastOutput = clock.now();
          if (line.trim() !== '') lastLine = line.trim();
        },
      },
    );
    let finished = false;
    const watch = (async () => {
      while (!finished) {
        await clock.sleep(250, stop.signal);
        // Output already waiting in the pipe is read first (I/O before setImmediate), so a daemon that was busy
        // for a while does not take its own delay for the guest's silence.
        await new Promise((resolve) => setImmediate(resolve));
        if (finished) return;
        const now = clock.now();
        if (now - lastOutput >= PROBE_STALL_MS) stalled = 'silent';
        else if (now - started >= PROBE_LIMIT_MS) stalled = 'limit';
        if (stalled) {
          stop.abort();
          return;
        }
      }
    })();
    const result = await run.finally(() => {
      finished = true;
      stop.abort();
    });
    // The watcher ends on its own at its next wake-up; nothing waits for it.
    void watch;
    const seconds = ((clock.now() - started) / 1000).toFixed(1);
    if (result.stdout.includes(PROBE_MARKER)) return { accel: 'kvm', reason: `KVM booted a test guest in ${seconds}s` };
    if (stalled === 'silent') {
      const after = lastLine ? ` after "${lastLine.slice(0, 60)}"` : ' (it printed nothing)';
      return { accel: 'tcg', reason: `a KVM test guest hung: no console output for ${PROBE_STALL_MS / 1000}s${after}; using software emulation` };
    }
    if (stalled === 'limit') return { accel: 'tcg', reason: `a KVM test guest did not finish booting within ${PROBE_LIMIT_MS / 1000}s; using software emulation` };
    const firstError = result.stderr.trim().split('\n').find((l) => /error/i.test(l)) ?? result.stderr.trim().split('\n')[0];
    const why = firstError?.replace(/^.*?error: /, '') || `qemu exited ${result.code ?? result.signal}`;
    return { accel: 'tcg', reason: `KVM cannot run this guest here (${why}); using software emulation` };
  }
}


function readBootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    // No procfs: decisions are then kept until the cache file is removed.
    return 'unknown';
  }
}

function isRemembered(value: unknown): value is Remembered {
  const r = value as Partial<Remembered> | null;
  return typeof r === 'object' && r !== null && typeof r.key === 'string' && (r.accel === 'kvm' || r.accel === 'tcg')
    && typeof r.reason === 'string' && typeof r.decidedAt === 'string';
}
