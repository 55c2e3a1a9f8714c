// What `banger doctor` reports: one row per check, from the CLI's own look at the host and from bangerd's look at
// what it runs (`daemon.doctor`).

export type CheckStatus = 'ok' | 'warn' | 'fail';

/** A fix `doctor --fix` may run unattended: nothing it does can lose data or touch what is not banger's. */
export type SafeFix =
  | { kind: 'apt-install'; packages: string[] }
  | { kind: 'mkdir'; paths: string[] }
  | { kind: 'remove-stale-socket'; path: string };

export interface DoctorCheck {
  /** Stable, for --json readers: e.g. `tools.qemu-img`, `store.integrity`. */
  id: string;
  status: CheckStatus;
  /** One line: what was found. */
  summary: string;
  /** The command that fixes it (warn and fail rows). */
  fix?: string;
  /** Set when `doctor --fix` can run the fix itself. */
  safeFix?: SafeFix;
}

export interface DoctorReport {
  healthy: boolean;
  checks: DoctorCheck[];
}
