import { BangerError } from '../../protocol/errors.ts';
import type { VmCreateParams } from '../../protocol/methods.ts';
import type { CliContext } from '../context.ts';
import { printJson, progressPrinter, reportError } from '../output.ts';
import { withCtrlC } from '../cancel.ts';
import { describeVm } from './vm-list.ts';

export interface CreateFlags {
  name?: string;
  image?: string;
  cpus?: string;
  memory?: string;
  disk?: string;
  sshTimeout?: string;
  json?: boolean;
}

function wholeNumber(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new BangerError('INVALID_ARGUMENT', `${flag} must be a whole number (got ${JSON.stringify(value)})`);
  return Number(value);
}

/** Memory as MiB, accepting "2048", "2048M", "2G". */
function memoryMib(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+)\s*(?:([mMgG])(?:i?[bB])?)?$/.exec(value);
  if (!m) throw new BangerError('INVALID_ARGUMENT', `--memory must be like 2048, 2048M or 2G (got ${JSON.stringify(value)})`);
  return Number(m[1]) * (m[2] && /g/i.test(m[2]) ? 1024 : 1);
}

/** Disk as GiB, accepting "8" or "8G". */
function diskGib(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+)\s*(?:[gG]i?[bB]?)?$/.exec(value);
  if (!m) throw new BangerError('INVALID_ARGUMENT', `--disk must be a size in GiB like 8 or 8G (got ${JSON.stringify(value)})`);
  return Number(m[1]);
}

export function createParams(flags: CreateFlags): VmCreateParams {
  const params: VmCreateParams = {};
  if (flags.name !== undefined) params.name = flags.name;
  if (flags.image !== undefined) params.image = flags.image;
  const vcpus = wholeNumber(flags.cpus, '--cpus');
  if (vcpus !== undefined) params.vcpus = vcpus;
  const mem = memoryMib(flags.memory);
  if (mem !== undefined) params.memoryMib = mem;
  const disk = diskGib(flags.disk);
  if (disk !== undefined) params.diskGib = disk;
  const timeout = wholeNumber(flags.sshTimeout, '--ssh-timeout');
  if (timeout !== undefined) params.sshTimeoutSec = timeout;
  return params;
}

export async function vmCreate(ctx: CliContext, flags: CreateFlags & { start?: boolean }): Promise<number> {
  const client = await ctx.client();
  const vm = await withCtrlC(
    () => ctx.output.err('banger: cancelling; the VM being created is removed'),
    (signal) => client.createVm({ ...createParams(flags), start: flags.start !== false }, { signal, onProgress: progressPrinter(ctx.output) }),
  );
  if (flags.json) printJson(ctx.output, vm);
  else ctx.output.out(describeVm(vm));
  return 0;
}

export async function vmStart(ctx: CliContext, refs: string[], flags: { sshTimeout?: string; json?: boolean }): Promise<number> {
  const client = await ctx.client();
  const timeout = wholeNumber(flags.sshTimeout, '--ssh-timeout');
  const results = [];
  for (const ref of refs) {
    const vm = await withCtrlC(
      () => ctx.output.err(`banger: cancelling; ${ref} is stopped again`),
      (signal) => client.startVm(ref, { waitSsh: true, ...(timeout === undefined ? {} : { sshTimeoutSec: timeout }) }, { signal, onProgress: progressPrinter(ctx.output) }),
    );
    results.push(vm);
    if (!flags.json) ctx.output.out(`${vm.name} running (${vm.ip})`);
  }
  if (flags.json) printJson(ctx.output, results);
  return 0;
}

/**
 * Runs `op` on every VM at once and waits for all of them: prints each success and each failure (with its hint),
 * and returns the exit status of the first failure in the order given, or 0.
 */
async function onEachVm<T extends { name: string }>(ctx: CliContext, refs: string[], options: { json?: boolean; done: string; op: (ref: string) => Promise<T> }): Promise<number> {
  const settled = await Promise.allSettled(refs.map((ref) => options.op(ref)));
  const results: T[] = [];
  let status = 0;
  settled.forEach((outcome, i) => {
    if (outcome.status === 'fulfilled') {
      results.push(outcome.value);
      if (!options.json) ctx.output.out(`${outcome.value.name} ${options.done}`);
      return;
    }
    const code = reportError(ctx.output, outcome.reason, refs.length > 1 ? { subject: refs[i]! } : {});
    if (status === 0) status = code;
  });
  if (options.json) printJson(ctx.output, results);
  return status;
}

export async function vmStop(ctx: CliContext, refs: string[], flags: { json?: boolean }): Promise<number> {
  const client = await ctx.client();
  return onEachVm(ctx, refs, { json: flags.json, done: 'stopped', op: (ref) => client.stopVm(ref) });
}

export async function vmDelete(ctx: CliContext, refs: string[], flags: { json?: boolean }): Promise<number> {
  const client = await ctx.client();
  return onEachVm(ctx, refs, { json: flags.json, done: 'deleted', op: (ref) => client.deleteVm(ref) });
}
