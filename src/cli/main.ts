// The banger CLI's entry point (bin/banger runs this file). The program itself is in program.ts, which tests import.
import { main } from './program.ts';

process.exitCode = await main(process.argv.slice(2));
