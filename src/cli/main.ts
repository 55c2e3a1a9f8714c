// banger CLI: parse → SDK call → print. Each command lives in its own file under commands/.
import { Command, CommanderError } from 'commander';
import { BangerError } from '../protocol/errors.ts';
import { connect, type BangerClient } from '../sdk/client.ts';
import { VERSION } from '../version.ts';
import type { CliContext } from './context.ts';
import { splitGuestCommand } from './guest-command.ts';
import { reportError, stdio } from './output.ts';
import { vmRun } from './commands/vm-run.ts';
import { vmCreate, vmDelete, vmStart, vmStop } from './commands/vm-create.ts';
import { vmList, vmShow } from './commands/vm-list.ts';
import { vmSsh } from './commands/vm-ssh.ts';
import { vmLogs } from './commands/vm-logs.ts';
import { imageList, kernelList } from './commands/catalog.ts';
import { daemonStart, daemonStatus, daemonStop, version } from './commands/daemon.ts';

export function buildProgram(ctx: CliContext, setStatus: (code: number) => void): Command {
  const program = new Command('banger')
    .description('disposable development sandboxes as microVMs')
    .version(VERSION, '--version', 'print the version')
    .exitOverride()
    .showHelpAfterError();
  const act = <A extends unknown[]>(fn: (...args: A) => Promise<number>) => async (...args: A) => setStatus(await fn(...args));
  const json = ['--json', 'print machine-readable JSON on stdout'] as const;
  const sizeOptions = (cmd: Command): Command =>
    cmd
      .option('--name <name>', 'VM name (default: a generated one)')
      .option('--image <image>', 'image to boot (default from config: debian-bookworm)')
      .option('--cpus <n>', 'virtual CPUs')
      .option('--memory <size>', 'memory, e.g. 2048, 2048M or 2G')
      .option('--disk <size>', 'work disk (/root) size in GiB, e.g. 8 or 8G')
      .option('--ssh-timeout <seconds>', 'how long to wait for sshd in the guest');

  const vm = program.command('vm').description('create, run and manage VMs');
  sizeOptions(vm.command('run').description('boot a fresh VM and open a shell, or run `-- CMD ARGS` in it and exit with its status'))
    .argument('[path...]', 'reserved: a directory to ship into the VM')
    .option('--rm', 'delete the VM afterwards (kept if sshd never comes up, for inspection)')
    .action(act((paths: string[], flags) => vmRun(ctx, paths, flags)));
  sizeOptions(vm.command('create').description('create a VM and boot it'))
    .option('--no-start', 'only create it; boot later with vm start')
    .option(...json)
    .action(act((flags) => vmCreate(ctx, flags)));
  vm.command('start').description('boot stopped VMs and wait for ssh').argument('<vm...>').option('--ssh-timeout <seconds>').option(...json)
    .action(act((refs: string[], flags) => vmStart(ctx, refs, flags)));
  vm.command('stop').description('sync and stop VMs (fast: no guest shutdown)').argument('<vm...>').option(...json)
    .action(act((refs: string[], flags) => vmStop(ctx, refs, flags)));
  vm.command('delete').alias('rm').description('stop VMs and remove everything they had').argument('<vm...>').option(...json)
    .action(act((refs: string[], flags) => vmDelete(ctx, refs, flags)));
  vm.command('list').alias('ls').description('list VMs').option(...json).action(act((flags) => vmList(ctx, flags)));
  vm.command('show').description('show one VM').argument('<vm>').option(...json).action(act((ref: string, flags) => vmShow(ctx, ref, flags)));
  vm.command('ssh').description('open a shell in a running VM, or run `-- CMD ARGS` there').argument('<vm>')
    .action(act((ref: string) => vmSsh(ctx, ref)));
  vm.command('logs').description("print the guest's serial console").argument('<vm>').option('-f, --follow', 'keep printing new output')
    .action(act((ref: string, flags) => vmLogs(ctx, ref, flags)));

  const image = program.command('image').description('images VMs boot from');
  image.command('list').alias('ls').description('list images').option(...json).action(act((flags) => imageList(ctx, flags)));
  const kernel = program.command('kernel').description('guest kernels');
  kernel.command('list').alias('ls').description('list kernels').option(...json).action(act((flags) => kernelList(ctx, flags)));

  const daemon = program.command('daemon').description('manage bangerd and bangerd-root');
  daemon.command('start').description('start both in the background').action(act(() => daemonStart(ctx)));
  daemon.command('stop').description('stop both (running VMs keep running)').action(act(() => daemonStop(ctx)));
  daemon.command('status').description('show whether they run').option(...json).action(act((flags) => daemonStatus(ctx, flags)));
  program.command('version').description('print versions').option(...json).action(act((flags) => version(ctx, flags)));
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const { own, guest } = splitGuestCommand(argv);
  let client: BangerClient | null = null;
  let status = 0;
  const ctx: CliContext = {
    output: stdio,
    guestCommand: guest,
    client: async () => {
      client ??= await connect({ onNotice: (m) => stdio.err(`banger: ${m}`) });
      return client;
    },
  };
  const program = buildProgram(ctx, (code) => {
    status = code;
  });
  try {
    if (guest !== null && !['run', 'ssh'].includes(own[1] ?? '')) {
      throw new BangerError('INVALID_ARGUMENT', '`-- CMD` is only accepted by vm run and vm ssh');
    }
    await program.parseAsync(own, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    status = reportError(stdio, err);
  } finally {
    (client as BangerClient | null)?.close();
  }
  return status;
}

process.exitCode = await main(process.argv.slice(2));
