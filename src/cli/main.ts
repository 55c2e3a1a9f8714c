// The banger CLI's entry point (bin/banger runs this file). The program itself is in program.ts, which tests import;
// a plain `vm exec` through the guest agent skips it (see fast-exec.ts).
import { fastExecArgs, runFastExec } from './fast-exec.ts';
import { stdio } from './output.ts';

const argv = process.argv.slice(2);
const fast = fastExecArgs(argv, Boolean(process.stdin.isTTY && process.stdout.isTTY));
process.exitCode = fast ? await runFastExec(fast, stdio) : await (await import('./program.ts')).main(argv);
