// Commands that take several VM refs (vm start/stop/restart/kill/delete a b c): the refs are resolved against one
// listing, each VM runs once however many refs name it, all run at once, and each outcome is reported in the
// order the refs were given. A ref that names no VM, or several, fails alone.
import type { VmInfo } from '../protocol/methods.ts';
import { matchVmRef, oneVm } from '../protocol/vm-refs.ts';
import type { CliContext } from './context.ts';
import { printJson, reportError } from './output.ts';

/** One entry per distinct outcome, in the order given: a VM (with the ref that first named it) or a ref's error. */
export type ResolvedRef = { ref: string; vm: VmInfo } | { ref: string; error: unknown };

/** Resolves `refs` against `vms` (one listing), dropping a ref that names a VM an earlier ref already named. */
export function resolveRefs(vms: readonly VmInfo[], refs: readonly string[]): ResolvedRef[] {
  const seen = new Set<string>();
  const out: ResolvedRef[] = [];
  for (const ref of refs) {
    let vm: VmInfo;
    try {
      vm = oneVm(ref, matchVmRef(vms, ref));
    } catch (error) {
      out.push({ ref, error });
      continue;
    }
    if (seen.has(vm.id)) continue;
    seen.add(vm.id);
    out.push({ ref, vm });
  }
  return out;
}

export interface OnEachVmOptions<T> {
  json?: boolean;
  /** The operation on one VM; it gets the VM's full id, which names it unambiguously. */
  op: (vm: VmInfo) => Promise<T>;
  /** The line printed for a success (without --json). */
  done: (result: T) => string;
}

/**
 * Lists the VMs once (one vm.list call), runs `op` on every VM the refs name at once and waits for all of them:
 * prints each success and each failure (with its hint), and returns the exit status of the first failure in
 * the order given, or 0. With --json, the results go to stdout as one array.
 */
export async function onEachVm<T>(ctx: CliContext, refs: string[], options: OnEachVmOptions<T>): Promise<number> {
  const vms = await (await ctx.client()).listVms();
  const resolved = resolveRefs(vms, refs);
  const settled = await Promise.allSettled(resolved.map((r) => ('vm' in r ? options.op(r.vm) : Promise.reject(r.error))));
  const results: T[] = [];
  let status = 0;
  settled.forEach((outcome, i) => {
    if (outcome.status === 'fulfilled') {
      results.push(outcome.value);
      if (!options.json) ctx.output.out(options.done(outcome.value));
      return;
    }
    const code = reportError(ctx.output, outcome.reason, { ...(refs.length > 1 ? { subject: resolved[i]!.ref } : {}), json: options.json === true, ...(ctx.command ? { command: ctx.command } : {}) });
    if (status === 0) status = code;
  });
  if (options.json) printJson(ctx.output, results);
  return status;
}
