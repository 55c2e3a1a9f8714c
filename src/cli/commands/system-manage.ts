// banger system status | restart | uninstall [--purge]: the services `system install` made. A restart keeps
// guests running (the units' KillMode=process); uninstall stops and removes the services, the commands and the
// installed releases, and with --purge also the owner's VMs, images and kernels, which it refuses while a VM
// runs.
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../../protocol/errors.ts';
import { connect } from '../../sdk/client.ts';
import { installOf, readInstallRecord, type InstallRecord } from '../../system/install-layout.ts';
import { isSocketAlive } from '../../system/socket-server.ts';
import { DAEMON_UNIT, HELPER_UNIT } from '../../system/systemd-units.ts';
import type { CliContext } from '../context.ts';
import { printJson } from '../output.ts';
import { bangerdBusyWith } from '../daemon-busy.ts';
import { DEFAULT_PREFIX, lookupOwner, ownerPaths, systemctlFor, waitForDaemon, type SystemFlags } from './system-install.ts';

/** The prefix and record of the install: --prefix, else the one this CLI runs from, else /opt/banger. */
export function installed(flags: SystemFlags): { prefix: string; record: InstallRecord } {
  const prefix = path.resolve(flags.prefix ?? installOf()?.prefix ?? DEFAULT_PREFIX);
  const record = readInstallRecord(prefix);
  if (!record) throw new BangerError('NOT_INSTALLED', `banger is not installed as a system service in ${prefix}`, { hint: 'install it: sudo banger system install --owner USER (or name another prefix: --prefix DIR)' });
  return { prefix, record };
}

function pathsOf(record: InstallRecord) {
  return ownerPaths(lookupOwner(record.owner.name), record.environment);
}

export async function systemStatus(ctx: CliContext, flags: SystemFlags): Promise<number> {
  const { prefix, record } = installed(flags);
  const systemctl = systemctlFor(flags);
  const units = Object.fromEntries([HELPER_UNIT, DAEMON_UNIT].map((u) => [u, systemctl.show(u)]));
  const current = fs.existsSync(path.join(prefix, 'current')) ? fs.readlinkSync(path.join(prefix, 'current')) : null;
  const answering = await isSocketAlive(pathsOf(record).daemonSocket);
  if (flags.json) printJson(ctx.output, { prefix, current, record, units, answering });
  else {
    ctx.output.out([
      `installed: banger ${record.version}${record.commit ? ` (${record.commit})` : ''} for ${record.owner.name}, ${prefix}/current -> ${current ?? 'missing'}`,
      ...Object.entries(units).map(([unit, s]) => `${unit.padEnd(21)} ${s.active} (${s.sub})${s.mainPid ? `, pid ${s.mainPid}` : ''}`),
      `bangerd answers: ${answering ? 'yes' : 'no'}`,
    ].join('\n'));
  }
  return Object.values(units).every((s) => s.active === 'active') && answering ? 0 : 1;
}

/** Refuses while bangerd is in the middle of something that changes state, unless --force. */
async function refuseIfBusy(socket: string, force: boolean | undefined, what: string): Promise<void> {
  if (force) return;
  const busy = await bangerdBusyWith(socket);
  if (busy.length > 0) throw new BangerError('VM_BAD_STATE', `bangerd is busy: ${busy.join(', ')}`, { hint: `let them finish and ${what} again, or go ahead anyway with --force` });
}

export async function systemRestart(ctx: CliContext, flags: SystemFlags): Promise<number> {
  const { record } = installed(flags);
  const systemctl = systemctlFor(flags);
  const paths = pathsOf(record);
  await refuseIfBusy(paths.daemonSocket, flags.force, 'run banger system restart');
  systemctl.run(['restart', HELPER_UNIT]);
  systemctl.run(['restart', DAEMON_UNIT]);
  await waitForDaemon(paths, 'systemctl restart');
  ctx.output.out(`restarted ${HELPER_UNIT} and ${DAEMON_UNIT} (running VMs kept running)`);
  return 0;
}

export async function systemUninstall(ctx: CliContext, flags: SystemFlags): Promise<number> {
  const { prefix, record } = installed(flags);
  const systemctl = systemctlFor(flags);
  const paths = pathsOf(record);
  if (flags.purge && (await isSocketAlive(paths.daemonSocket))) {
    const client = await connect({ autoStart: false, socketPath: paths.daemonSocket });
    const running = (await client.call('vm.list', {})).filter((vm) => vm.state === 'running').map((vm) => vm.name);
    client.close();
    if (running.length > 0) {
      throw new BangerError('VM_BAD_STATE', `--purge removes every VM, and ${running.join(', ')} ${running.length > 1 ? 'are' : 'is'} running`, { hint: `stop them first: banger vm stop ${running.join(' ')}` });
    }
  }
  systemctl.run(['disable', '--now', ...record.units]);
  for (const unit of record.units) fs.rmSync(path.join(record.unitDir, unit), { force: true });
  systemctl.run(['daemon-reload']);
  for (const program of ['banger', 'bangerd', 'bangerd-root']) {
    const link = path.join(record.binDir, program);
    // Only links into this install: a file or another banger someone put there stays.
    if (fs.lstatSync(link, { throwIfNoEntry: false })?.isSymbolicLink() && fs.readlinkSync(link).startsWith(`${prefix}/`)) fs.rmSync(link);
  }
  fs.rmSync(prefix, { recursive: true, force: true });
  const removed = [`${record.unitDir}/{${record.units.join(',')}}`, prefix];
  if (flags.purge) {
    for (const dir of [paths.stateDir, paths.cacheDir, paths.runDir]) fs.rmSync(dir, { recursive: true, force: true });
    removed.push(paths.stateDir, paths.cacheDir);
  }
  if (flags.json) printJson(ctx.output, { removed, kept: flags.purge ? [] : [paths.stateDir, paths.cacheDir] });
  else ctx.output.out(`removed ${removed.join(', ')}${flags.purge ? '' : `; kept the VMs, images and kernels in ${paths.stateDir} and ${paths.cacheDir} (remove them too: --purge)`}`);
  return 0;
}
