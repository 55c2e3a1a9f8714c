// The params of every bangerd RPC as zod schemas, checked before any handler runs (src/daemon/rpc-handlers.ts).
// Objects are strict, so a misspelt field is an error rather than a default silently used. The `satisfies`
// below ties each schema to its method's params type in methods.ts: no schema lets through a value that type
// does not allow.
import { z } from 'zod';
import type { MethodName, ParamsOf } from './methods.ts';
import { VM_LIMITS as L } from './vm-limits.ts';
import { KILL_SIGNALS } from './kill-signals.ts';

/** A VM name: what the guest's hostname and the CLI accept. */
export const VM_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** An image's name: also a directory name under banger's images directory. */
export const IMAGE_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const imageName = z.string().regex(IMAGE_NAME_PATTERN, { error: 'must be lowercase letters, digits and . _ -, starting with a letter or digit (at most 63)' });

/** A VM's name (at most 63 characters) or id (32 hex digits) or a prefix of either. */
const ref = z.string().min(1).max(64);
const sshTimeoutSec = z.int().min(L.sshTimeoutSec.min).max(L.sshTimeoutSec.max);
const noParams = z.strictObject({});
const absolutePath = z.string().min(1).max(4096).refine((p) => p.startsWith('/'), { error: 'must be an absolute path' });
const port = z.int().min(1).max(65535);
const workspaceSource = {
  path: z.string().min(1).max(4096).refine((p) => p.startsWith('/'), { error: 'must be an absolute path' }),
  includeUntracked: z.boolean().optional(),
  branch: z.string().min(1).max(200).optional(),
  from: z.string().min(1).max(200).optional(),
};

export const DAEMON_PARAMS = {
  'vm.create': z.strictObject({
    name: z.string().regex(VM_NAME_PATTERN, {
      error: 'must be lowercase letters, digits and "-", starting with a letter or digit (at most 63)',
    }).optional(),
    image: z.string().min(1).max(512).optional(),
    vcpus: z.int().min(L.vcpus.min).max(L.vcpus.max).optional(),
    memoryMib: z.int().min(L.memoryMib.min).max(L.memoryMib.max).optional(),
    diskGib: z.int().min(L.diskGib.min).max(L.diskGib.max).optional(),
    start: z.boolean().optional(),
    waitSsh: z.boolean().optional(),
    sshTimeoutSec: sshTimeoutSec.optional(),
    freshAccel: z.boolean().optional(),
    nat: z.boolean().optional(),
    workspace: z.strictObject(workspaceSource).optional(),
  }),
  'vm.start': z.strictObject({ ref, waitSsh: z.boolean().optional(), sshTimeoutSec: sshTimeoutSec.optional(), freshAccel: z.boolean().optional() }),
  'vm.stop': z.strictObject({ ref }),
  'vm.delete': z.strictObject({ ref }),
  'vm.list': noParams,
  'vm.show': z.strictObject({ ref }),
  'vm.health': z.strictObject({ ref }),
  'vm.ports': z.strictObject({ ref }),
  'vm.stats': z.strictObject({ ref }),
  'vm.forward': z.strictObject({ ref, guestPort: port, hostPort: port.optional() }),
  'vm.unforward': z.strictObject({ ref, hostPort: port }),
  'vm.ssh': z.strictObject({ ref }),
  'vm.logs': z.strictObject({ ref, offset: z.int().min(0).optional() }),
  'vm.workspace.prepare': z.strictObject({
    ref,
    ...workspaceSource,
    bootstrap: z.enum(['foreground', 'background', 'skip']).optional(),
  }),
  'vm.workspace.export': z.strictObject({ ref, baseCommit: z.string().regex(/^[0-9a-f]{4,64}$/, { error: 'must be a commit id (hex)' }).optional() }),
  'vm.workspace.bootstrap': z.strictObject({ ref, mode: z.enum(['foreground', 'background']) }),
  'image.list': noParams,
  'image.pull': z.strictObject({
    ref: z.string().min(1).max(512),
    name: imageName.optional(),
    sizeBytes: z.int().min(64 * 1024 ** 2).max(2 * 1024 ** 4).optional(),
  }),
  'image.show': z.strictObject({ name: z.string().min(1).max(512) }),
  'image.delete': z.strictObject({ name: z.string().min(1).max(512) }),
  'image.cache.list': noParams,
  'image.makeBundle': z.strictObject({
    out: absolutePath, name: imageName.optional(), kernelRef: imageName.optional(), fromImage: z.string().min(1).max(128).optional(), rootfsTar: absolutePath.optional(),
  }).refine((p) => (p.fromImage === undefined) !== (p.rootfsTar === undefined), { error: 'give either fromImage or rootfsTar' }),
  'image.register': z.strictObject({ name: imageName, rootfs: absolutePath, kernelRef: imageName.optional(), kernel: absolutePath.optional(), initrd: absolutePath.optional() })
    .refine((p) => !(p.kernelRef !== undefined && (p.kernel !== undefined || p.initrd !== undefined)), { error: 'kernelRef and kernel/initrd exclude each other' })
    .refine((p) => (p.kernel === undefined) === (p.initrd === undefined), { error: 'kernel and initrd go together' }),
  'image.promote': z.strictObject({ vm: ref, name: imageName }),
  'image.cache.prune': z.strictObject({ all: z.boolean().optional() }),
  'kernel.list': noParams,
  'kernel.catalog': noParams,
  'kernel.pull': z.strictObject({ name: imageName, force: z.boolean().optional() }),
  'kernel.import': z.strictObject({ name: imageName, from: z.string().min(1).max(4096).refine((p) => p.startsWith('/'), { error: 'must be an absolute path' }) }),
  'kernel.show': z.strictObject({ name: z.string().min(1).max(128) }),
  'kernel.delete': z.strictObject({ name: z.string().min(1).max(128) }),
  'daemon.version': noParams,
  'daemon.status': noParams,
  'daemon.doctor': noParams,
  'daemon.shutdown': noParams,
  'vm.restart': z.strictObject({ ref, waitSsh: z.boolean().optional(), sshTimeoutSec: sshTimeoutSec.optional(), freshAccel: z.boolean().optional() }),
  'vm.kill': z.strictObject({ ref, signal: z.enum(KILL_SIGNALS).optional() }),
  'vm.set': z.strictObject({
    ref,
    vcpus: z.int().min(L.vcpus.min).max(L.vcpus.max).optional(),
    memoryMib: z.int().min(L.memoryMib.min).max(L.memoryMib.max).optional(),
    diskGib: z.int().min(L.diskGib.min).max(L.diskGib.max).optional(),
  }),
  'vm.prune': z.strictObject({ ids: z.array(z.string().min(1).max(64)).max(10_000).optional() }),
} satisfies { [M in MethodName]: z.ZodType<ParamsOf<M>> };
