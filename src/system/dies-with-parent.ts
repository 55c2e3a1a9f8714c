// Children that die with their parent, through `setpriv --pdeathsig KILL` (util-linux 2.33 or later). bangerd-root
// runs its debootstrap, mkfs, cp and ip this way: left running after the helper is killed (kill -9 included) they
// would go on writing as root with nobody to clean up after them. bangerd runs its KVM probe this way, so a probe
// QEMU never outlives the daemon. A VM's QEMU is the exception: it must outlive restarts of both (it is launched
// with the plain runner; see HelperService.launchQemu).
import { BangerError } from '../protocol/errors.ts';
import type { ProcessRunner, RunOptions, RunResult } from './process.ts';

/**
 * The argv that runs `command` with SIGKILL as its parent-death signal. A setpriv that changes uids clears a
 * death signal set before it, so when the command already is setpriv (ownerArgv) the option goes to that one
 * setpriv, which sets it last, just before it executes the program.
 */
export function withDeathSignal(command: string, args: readonly string[]): string[] {
  if (command === 'setpriv') return ['setpriv', '--pdeathsig', 'KILL', ...args];
  return ['setpriv', '--pdeathsig', 'KILL', '--', command, ...args];
}

/** A ProcessRunner whose children get SIGKILL when this process dies. */
export class DiesWithParentRunner implements ProcessRunner {
  private readonly inner: ProcessRunner;

  constructor(inner: ProcessRunner) {
    this.inner = inner;
  }

  async run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const [program, ...rest] = withDeathSignal(command, args);
    const result = await this.inner.run(program!, rest, options);
    // setpriv reports a program it cannot find itself (exit 127), where a direct spawn would have said ENOENT.
    const missing = /^setpriv: failed to execute (\S+): No such file or directory/m.exec(result.stderr);
    if (result.code === 127 && missing) {
      throw new BangerError('MISSING_TOOL', `${missing[1]} is not installed or not on PATH`, { hint: 'run scripts/setup.sh, or install the Debian package that provides it' });
    }
    return result;
  }
}
