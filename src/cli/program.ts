// banger CLI: parse → SDK call → print. This file declares the commands and runs them; each command lives in
// its own file under commands/, imported only when it runs, so `banger vm list` loads no ssh or daemon code.
// Importing this file has no side effects: main.ts is the entry that runs main().
import { Command, CommanderError, Option } from 'commander';
import { BangerError } from '../protocol/errors.ts';
import type { BangerClient } from '../sdk/client.ts';
import { VERSION } from '../version.ts';
import type { SignalSource } from './cancel.ts';
import type { CliContext } from './context.ts';
import type { LiveNames } from './commands/complete.ts';
import { splitGuestCommand } from './guest-command.ts';
import { reportError, stdio, type Output } from './output.ts';
import { resolvePaths } from '../system/paths.ts';

/**
 * The command tree. Actions hand their exit status to `setStatus`; help goes to ctx.output; parse errors are not
 * printed but thrown (a CommanderError), so main reports them like every other error.
 */
export function buildProgram(ctx: CliContext, setStatus: (code: number) => void): Command {
  const program = new Command('banger')
    .description('disposable development sandboxes as microVMs')
    .version(VERSION, '--version', 'print the version')
    .exitOverride()
    // Set before the subcommands are declared, which inherit it: help goes to ctx.output, and errors are not
    // printed here but thrown (exitOverride) for main to report.
    .configureOutput({ writeOut: (text) => ctx.output.out(text), writeErr: (text) => ctx.output.err(text), outputError: () => undefined });
  const act = <A extends unknown[]>(fn: (...args: A) => Promise<number>) => async (...args: A) => setStatus(await fn(...args));
  const freshAccel = ['--fresh-accel', 'decide KVM or TCG afresh (a KVM probe) instead of using the decision remembered for this host boot'] as const;
  const json = ['--json', 'print machine-readable JSON on stdout (and errors as JSON on stderr)'] as const;
  const sizeOptions = (cmd: Command): Command =>
    cmd
      .option('--name <name>', 'VM name (default: a generated one)')
      .option('--image <image>', 'image to boot: a name from image list, or an OCI reference (pulled on first use); default from config: debian-bookworm')
      .option('--cpus <n>', 'virtual CPUs')
      .option('--memory <size>', 'memory, e.g. 2048, 2048M or 2G')
      .option('--disk <size>', 'work disk (/root) size in GiB, e.g. 8 or 8G')
      .option('--ssh-timeout <seconds>', 'how long to wait for sshd in the guest')
      .option('--nat', 'let the guest reach beyond the host (outbound, masqueraded); kept across restarts')
      .option(...freshAccel);
  // vm list, its aliases vm ls and vm ps, and the top-level ps.
  const listCommand = (cmd: Command): Command =>
    cmd.description('list running VMs (--all: every VM)')
      .option('-a, --all', 'every VM, whatever its state')
      .option('-l, --latest', 'only the most recently created VM, whatever its state')
      .option('-q, --quiet', 'only ids, one per line')
      .option(...json)
      .action(act(async (flags) => (await import('./commands/vm-list.ts')).vmList(ctx, flags)));

  const vm = program.command('vm').description('create, run and manage VMs');
  const workspaceOptions = (cmd: Command): Command =>
    cmd
      .option('--include-untracked', 'ship untracked files that are not ignored too (default: git-tracked files only)')
      .option('--branch <name>', 'create this guest-only branch in the guest checkout')
      .option('--from <ref>', 'start --branch at this ref (its tree, without local changes) instead of HEAD')
      .option('--no-bootstrap', 'skip `mise install` for a repository with .mise.toml, mise.toml or .tool-versions');
  workspaceOptions(sizeOptions(vm.command('run').description('boot a fresh VM (with PATH: a git checkout shipped to /root/repo) and open a shell, or run `-- CMD ARGS` there and exit with its status')))
    .argument('[path...]', 'a directory inside a git checkout to ship into the VM')
    .option('--rm', 'delete the VM afterwards (kept if sshd never comes up, for inspection)')
    .option('-d, --detach', 'create, ship the workspace, bootstrap, then return, leaving the VM running')
    .option('--dry-run', 'print the files PATH would ship, and create nothing')
    .option('-p, --publish <ports>', 'serve a guest TCP port on a host loopback port while the VM runs: [HOST_PORT:]GUEST_PORT (repeatable)', (v: string, all: string[] = []) => [...all, v])
    .option(...json)
    .action(act(async (paths: string[], flags) => (await import('./commands/vm-run.ts')).vmRun(ctx, paths, flags)));
  sizeOptions(vm.command('create').description('create a VM and boot it'))
    .option('--no-start', 'only create it; boot later with vm start')
    .option(...json)
    .action(act(async (flags) => (await import('./commands/vm-create.ts')).vmCreate(ctx, flags)));
  vm.command('start').description('boot stopped VMs and wait for ssh').argument('<vm...>').option('--ssh-timeout <seconds>').option(...freshAccel).option(...json)
    .action(act(async (refs: string[], flags) => (await import('./commands/vm-start.ts')).vmStart(ctx, refs, flags)));
  vm.command('stop').description('sync and stop VMs (fast: no guest shutdown)').argument('<vm...>').option(...json)
    .action(act(async (refs: string[], flags) => (await import('./commands/vm-stop.ts')).vmStop(ctx, refs, flags)));
  vm.command('delete').alias('rm').description('stop VMs and remove everything they had').argument('<vm...>').option(...json)
    .action(act(async (refs: string[], flags) => (await import('./commands/vm-delete.ts')).vmDelete(ctx, refs, flags)));
  listCommand(vm.command('list').aliases(['ls', 'ps']));
  vm.command('show').description('show one VM').argument('<vm>').option(...json)
    .action(act(async (ref: string, flags) => (await import('./commands/vm-show.ts')).vmShow(ctx, ref, flags)));
  vm.command('ssh').description('open a shell in a running VM, or run `-- CMD ARGS` there').argument('<vm>')
    .action(act(async (ref: string) => (await import('./commands/vm-ssh.ts')).vmSsh(ctx, ref)));
  vm.command('exec').description('run `-- CMD ARGS` in a running VM (in its workspace when it has one) and exit with its status').argument('<vm>')
    .option('--via <how>', 'agent (the guest agent: no ssh, works without sshd), ssh, or auto: the agent unless a terminal is attached', 'auto')
    .action(act(async (ref: string, flags) => (await import('./commands/vm-exec.ts')).vmExec(ctx, ref, flags)));
  vm.command('ports').description('list what listens in a running VM (HTTP and HTTPS as URLs) and the host ports forwarded to it').argument('<vm>').option(...json)
    .action(act(async (ref: string, flags) => (await import('./commands/vm-ports.ts')).vmPorts(ctx, ref, flags)));
  vm.command('health').description("ask a running VM's guest agent how the guest is (systemd state, uptime, agent version)").argument('<vm>').option(...json)
    .action(act(async (ref: string, flags) => (await import('./commands/vm-health.ts')).vmHealth(ctx, ref, flags)));
  vm.command('stats').description("show a running VM's CPU, memory and disk use, uptime, and its VMM's host memory").argument('<vm>').option(...json)
    .action(act(async (ref: string, flags) => (await import('./commands/vm-stats.ts')).vmStats(ctx, ref, flags)));
  vm.command('forward').description('serve a guest TCP port on a host loopback port while the VM runs ([HOST_PORT:]GUEST_PORT; a free host port when HOST_PORT is left out)')
    .argument('<vm>').argument('[ports]', '[HOST_PORT:]GUEST_PORT')
    .option('--remove <host-port>', 'stop forwarding this host port')
    .option(...json)
    .action(act(async (ref: string, spec: string | undefined, flags) => (await import('./commands/vm-forward.ts')).vmForward(ctx, ref, spec, flags)));
  const workspace = vm.command('workspace').description('ship a host checkout into a VM and take its changes back');
  workspaceOptions(workspace.command('prepare').description('ship the git checkout at PATH into a running VM at /root/repo and record its base commit'))
    .argument('<vm>').argument('<path>').option(...json)
    .action(act(async (ref: string, dir: string, flags) => (await import('./commands/vm-workspace-prepare.ts')).vmWorkspacePrepare(ctx, ref, dir, flags)));
  workspace.command('export').description('print one binary patch of everything changed in the VM\'s workspace since its base commit').argument('<vm>')
    .option('--base-commit <sha>', 'diff against this commit instead of the one recorded at prepare')
    .option('-o, --output <file>', 'write the patch to FILE instead of stdout')
    .action(act(async (ref: string, flags) => (await import('./commands/vm-workspace-export.ts')).vmWorkspaceExport(ctx, ref, flags)));
  vm.command('logs').description("print the guest's serial console").argument('<vm>').option('-f, --follow', 'keep printing new output')
    .action(act(async (ref: string, flags) => (await import('./commands/vm-logs.ts')).vmLogs(ctx, ref, flags)));
  vm.command('restart').description('stop running VMs (as vm stop does), boot them again and wait for ssh').argument('<vm...>')
    .option('--ssh-timeout <seconds>').option(...freshAccel).option(...json)
    .action(act(async (refs: string[], flags) => (await import('./commands/vm-restart.ts')).vmRestart(ctx, refs, flags)));
  vm.command('kill').description('end VMs at once by signalling their VMM (no guest sync); they end stopped').argument('<vm...>')
    .option('-s, --signal <signal>', 'KILL, TERM, INT, HUP or QUIT (or 9, 15, 2, 1, 3)', 'KILL').option(...json)
    .action(act(async (refs: string[], flags) => (await import('./commands/vm-kill.ts')).vmKill(ctx, refs, flags)));
  vm.command('prune').description('delete every VM that is not running (asks first)').option('-f, --force', 'do not ask').option(...json)
    .action(act(async (flags) => (await import('./commands/vm-prune.ts')).vmPrune(ctx, flags)));
  vm.command('set').description("change a stopped VM's vCPUs, memory or work disk size (the disk only grows); applies from its next boot").argument('<vm>')
    .option('--cpus <n>', 'virtual CPUs')
    .option('--memory <size>', 'memory, e.g. 2048, 2048M or 2G')
    .option('--disk <size>', 'work disk (/root) size in GiB, e.g. 16 or 16G; only larger than now')
    .option(...json)
    .action(act(async (ref: string, flags) => (await import('./commands/vm-set.ts')).vmSet(ctx, ref, flags)));
  listCommand(program.command('ps'));

  const image = program.command('image').description('images VMs boot from');
  image.command('list').alias('ls').description('list images').option(...json)
    .action(act(async (flags) => (await import('./commands/image-list.ts')).imageList(ctx, flags)));
  image.command('pull').description('pull an OCI image ([REGISTRY/]REPO[:TAG][@DIGEST]) from its registry and register it as a bootable image').argument('<ref>')
    .option('--name <name>', 'register it under this name (default: the repository\'s last component, and the tag unless latest)')
    .option('--size <size>', 'root filesystem size, e.g. 4G (default: its files plus 2 GiB of room; the file is sparse)')
    .option(...json)
    .action(act(async (ref: string, flags) => (await import('./commands/image-pull.ts')).imagePull(ctx, ref, flags)));
  image.command('show').description('show one image (by name or by the reference it was pulled from)').argument('<image>').option(...json)
    .action(act(async (name: string, flags) => (await import('./commands/image-show.ts')).imageShow(ctx, name, flags)));
  image.command('delete').alias('rm').description('delete images no VM is made from').argument('<image...>').option(...json)
    .action(act(async (names: string[], flags) => (await import('./commands/image-delete.ts')).imageDelete(ctx, names, flags)));
  image.command('make-bundle').description('write a bundle (tar.zst) for a catalog: from a rootfs tar (e.g. docker export output; - for stdin) or a registered image')
    .option('--rootfs-tar <file>', 'a root file system as a tar, imported with owners, modes and setuid bits kept; - reads stdin')
    .option('--from-image <name>', 'a registered (built, pulled or promoted) image')
    .option('--name <name>', 'the name the catalog lists it under (default with --from-image: the image\'s)')
    .option('--kernel-ref <kernel>', 'the kernel it boots (a catalog kernel name)')
    .requiredOption('--out <file>', 'where to write the bundle')
    .option(...json)
    .action(act(async (flags) => (await import('./commands/image-files.ts')).imageMakeBundle(ctx, flags)));
  image.command('register').description('register an ext4 root file system as an image, with the kernel it boots').argument('<name>')
    .requiredOption('--rootfs <file>', 'the ext4 file (copied, sparse)')
    .option('--kernel-ref <kernel>', 'boot this kernel (banger kernel list, or one the catalog names)')
    .option('--kernel <file>', 'boot this kernel file (vmlinux or bzImage)...')
    .option('--initrd <file>', '...with this initrd, which must hold its virtio (blk, net, console) and ext4 modules and modules.dep')
    .option(...json)
    .action(act(async (name: string, flags) => (await import('./commands/image-files.ts')).imageRegister(ctx, name, flags)));
  image.command('promote').description("a stopped VM's root file system (not its /root work disk), flattened, as a new image").argument('<vm>').argument('<name>').option(...json)
    .action(act(async (vm: string, name: string, flags) => (await import('./commands/image-files.ts')).imagePromote(ctx, vm, name, flags)));
  const cache = image.command('cache').description('the verified OCI layer blobs pulls keep');
  cache.command('list').alias('ls').description('list cached blobs and the images made from them').option(...json)
    .action(act(async (flags) => (await import('./commands/image-cache.ts')).imageCacheList(ctx, flags)));
  cache.command('prune').description('remove cached blobs no registered image was made from').option('--all', 'remove every cached blob').option(...json)
    .action(act(async (flags) => (await import('./commands/image-cache.ts')).imageCachePrune(ctx, flags)));
  const kernel = program.command('kernel').description('guest kernels');
  kernel.command('list').alias('ls').description('list kernels').option('--available', 'also the kernels the catalog offers (STATE pulled or available)').option(...json)
    .action(act(async (flags) => (await import('./commands/kernel-list.ts')).kernelList(ctx, flags)));
  kernel.command('pull').description('download a kernel bundle the catalog names, verify it and register it').argument('<name>')
    .option('--force', 'pull it again even if it is here').option(...json)
    .action(act(async (name: string, flags) => (await import('./commands/kernel-manage.ts')).kernelPull(ctx, name, flags)));
  kernel.command('import').description('register the kernel in a directory (vmlinux or vmlinuz, and its modules) under NAME').argument('<name>')
    .requiredOption('--from <dir>', 'the directory holding the kernel').option(...json)
    .action(act(async (name: string, flags) => (await import('./commands/kernel-manage.ts')).kernelImport(ctx, name, flags)));
  kernel.command('show').description('show one kernel, and the images and VMs that use it').argument('<name>').option(...json)
    .action(act(async (name: string, flags) => (await import('./commands/kernel-manage.ts')).kernelShow(ctx, name, flags)));
  kernel.command('rm').alias('delete').description('remove kernels no image names and no VM boots').argument('<name...>').option(...json)
    .action(act(async (names: string[], flags) => (await import('./commands/kernel-manage.ts')).kernelRm(ctx, names, flags)));

  const system = program.command('system').description('banger as systemd services: install, status, restart, uninstall');
  const systemOptions = (cmd: Command): Command =>
    cmd.option('--prefix <dir>', 'where banger is installed (default: the install this banger runs from, else /opt/banger)')
      .addOption(new Option('--unit-dir <dir>', 'where the units go (tests)').hideHelp())
      .addOption(new Option('--systemctl <program>', 'the systemctl to run (tests)').hideHelp())
      .option(...json);
  systemOptions(system.command('install').description('install this build under PREFIX/versions, write and start bangerd-root.service and bangerd.service (needs root)'))
    .option('--owner <user>', 'the user bangerd runs as and whose VMs these are (default: $SUDO_USER, else root)')
    .option('--bin-dir <dir>', 'where the banger, bangerd and bangerd-root commands are linked', '/usr/local/bin')
    .action(act(async (flags) => (await import('./commands/system-install.ts')).systemInstall(ctx, flags)));
  systemOptions(system.command('status').description('the installed release and whether both services run and bangerd answers'))
    .action(act(async (flags) => (await import('./commands/system-manage.ts')).systemStatus(ctx, flags)));
  systemOptions(system.command('restart').description('restart both services; running VMs keep running'))
    .option('--force', 'restart while bangerd runs operations or guest sessions')
    .action(act(async (flags) => (await import('./commands/system-manage.ts')).systemRestart(ctx, flags)));
  systemOptions(system.command('uninstall').description('stop and remove the services, the commands and the installed releases (VMs, images and kernels stay unless --purge)'))
    .option('--purge', "also remove the owner's VMs, images, kernels and keys (refused while a VM runs)")
    .action(act(async (flags) => (await import('./commands/system-manage.ts')).systemUninstall(ctx, flags)));

  const daemon = program.command('daemon').description('manage bangerd and bangerd-root');
  daemon.command('start').description('start both in the background')
    .action(act(async () => (await import('./commands/daemon-start.ts')).daemonStart(ctx)));
  daemon.command('stop').description('stop both (running VMs keep running)')
    .action(act(async () => (await import('./commands/daemon-stop.ts')).daemonStop(ctx)));
  daemon.command('restart').description('stop both and start them again (running VMs keep running)')
    .action(act(async () => (await import('./commands/daemon-restart.ts')).daemonRestart(ctx)));
  daemon.command('status').description('show whether they run').option(...json)
    .action(act(async (flags) => (await import('./commands/daemon-status.ts')).daemonStatus(ctx, flags)));
  program.command('doctor').description('check the host, the install and what bangerd runs; healthy is one line, else what to fix')
    .option('-v, --verbose', 'print every check, not only warnings and failures')
    .option('--fix', 'run the fixes that are safe unattended (install missing Debian packages, create directories, remove stale sockets)')
    .option(...json)
    .action(act(async (flags) => (await import('./commands/doctor.ts')).doctor(ctx, flags)));
  program.command('update').description('install a newer signed release over this one (rolls back by itself when the new one fails)')
    .option('--check', 'only say whether a newer release is out')
    .option('--to <version>', 'install this release (newer or older) instead of the newest stable one')
    .option('--dry-run', 'download and verify the release and check the store against it, then stop: nothing changes')
    .option('--force', 'go ahead while bangerd runs operations or guest sessions')
    .addOption(new Option('--manifest-url <url>', 'read the release manifest from here (tests)').hideHelp())
    .option(...json)
    .action(act(async (flags) => (await import('./commands/update.ts')).update(ctx, flags)));
  program.command('version').description('print versions').option(...json)
    .action(act(async (flags) => (await import('./commands/version.ts')).version(ctx, flags)));
  program.command('ssh-config').description('let plain `ssh NAME.vm` reach the running VM NAME: print, add or remove the Include ~/.ssh/config needs')
    .option('--install', "add the Include at the top of ~/.ssh/config, between banger's markers")
    .option('--uninstall', "remove banger's markers and the Include between them from ~/.ssh/config")
    .option(...json)
    .action(act(async (flags) => (await import('./commands/ssh-config.ts')).sshConfig(ctx, flags)));
  program.command('completion').description('print the completion script for bash, zsh or fish (subcommands, flags, and VM, image and kernel names)')
    .argument('<shell>', 'bash, zsh or fish')
    .action(act(async (shell: string) => (await import('./commands/completion.ts')).completion(ctx, shell)));
  // ssh's ProxyCommand for Host *.vm (see commands/ssh-config.ts); not for people.
  program.command('ssh-proxy', { hidden: true }).argument('<host>').argument('<port>')
    .action(act(async (host: string, port: string) => (await import('./commands/ssh-proxy.ts')).sshProxy(ctx, host, port)));
  // ssh's KnownHostsCommand for Host *.vm (see commands/ssh-config.ts); not for people.
  program.command('ssh-known-hosts', { hidden: true }).argument('<host>')
    .action(act(async (host: string) => (await import('./commands/ssh-known-hosts.ts')).sshKnownHosts(ctx, host)));
  return program;
}

/** "banger vm create" for `vm create --cpus x`: the deepest command the arguments name (by name or alias). */
export function commandPath(program: Command, args: readonly string[]): string {
  const names = [program.name()];
  let current = program;
  for (const arg of args) {
    const next = current.commands.find((c) => c.name() === arg || c.aliases().includes(arg));
    if (!next) break;
    names.push(next.name());
    current = next;
  }
  return names.join(' ');
}

/** What main runs against; each defaults to the real thing (tests pass fakes). */
export interface MainDeps {
  output?: Output;
  /** Connects to bangerd (starting it when needed). */
  connect?: () => Promise<BangerClient>;
  exit?: (status: number) => void;
  signals?: SignalSource;
  runSsh?: CliContext['runSsh'];
  runViaAgent?: CliContext['runViaAgent'];
  /** config.toml, for the defaults `vm create --help` shows; from the environment when not given. */
  configFile?: string;
  /** VM, image and kernel names for `__complete`; from a running bangerd when not given. */
  liveNames?: LiveNames;
}

/** Runs the CLI on `argv` (without node and script) and returns its exit status; prints every error itself. */
export async function main(argv: string[], deps: MainDeps = {}): Promise<number> {
  const { own, guest } = splitGuestCommand(argv);
  const output = deps.output ?? stdio;
  const json = own.includes('--json');
  let client: BangerClient | null = null;
  let status = 0;
  const ctx: CliContext = {
    output,
    guestCommand: guest,
    exit: deps.exit ?? ((code) => process.exit(code)),
    client: async () => {
      client ??= await (deps.connect ?? (async () => (await import('../sdk/client.ts')).connect({ onNotice: (m) => output.err(`banger: ${m}`) })))();
      return client;
    },
    ...(deps.signals ? { signals: deps.signals } : {}),
    ...(deps.runSsh ? { runSsh: deps.runSsh } : {}),
    ...(deps.runViaAgent ? { runViaAgent: deps.runViaAgent } : {}),
  };
  const program = buildProgram(ctx, (code) => {
    status = code;
  });
  // The completion scripts' callback: its words are a command line being typed, not one to run, so they are
  // not parsed here (see commands/complete.ts). Not a commander command: `--` and flags among them are data.
  if (argv[0] === '__complete') return (await import('./commands/complete.ts')).complete(output, program, argv.slice(1), deps.liveNames);
  const command = commandPath(program, own);
  ctx.command = command;
  const sized = /^banger vm (create|run)$/.exec(command);
  if (sized && own.some((a) => a === '--help' || a === '-h')) {
    const cmd = program.commands.find((c) => c.name() === 'vm')!.commands.find((c) => c.name() === sized[1])!;
    const { defaultsHelp } = await import('./defaults-help.ts');
    cmd.addHelpText('after', defaultsHelp(deps.configFile ?? resolvePaths().configFile));
  }
  try {
    if (guest !== null && !['run', 'ssh', 'exec'].includes(own[1] ?? '')) {
      throw new BangerError('INVALID_ARGUMENT', '`-- CMD` is only accepted by vm run, vm exec and vm ssh', {
        hint: 'run a command in a VM with: banger vm run -- CMD, or banger vm exec NAME -- CMD',
      });
    }
    await program.parseAsync(own, { from: 'user' });
  } catch (err) {
    // --help and --version end the parse this way too.
    if (err instanceof CommanderError && err.exitCode === 0) return 0;
    status = reportError(output, err instanceof CommanderError ? parseError(err, command) : err, { json, command });
  } finally {
    (client as BangerClient | null)?.close();
  }
  return status;
}

/** A parse error as INVALID_ARGUMENT with commander's message; the hint (from the code) names the command's --help. */
function parseError(err: CommanderError, command: string): BangerError {
  const message = err.code === 'commander.help' ? `${command} needs a command` : err.message.replace(/^error: /, '');
  return new BangerError('INVALID_ARGUMENT', message);
}
