import fs from 'node:fs';
import type { CallContext } from '../../protocol/jsonrpc.ts';
import type { KernelInfo } from '../../protocol/methods.ts';
import type { Store } from '../../store/store.ts';
import type { ProcessRunner } from '../../system/process.ts';
import { isoNow, SingleFlight, type Clock } from '../../system/clock.ts';
import { findHostKernel, hostKernelId, importHostKernel, type HostKernelSource, HOST_KERNEL_SOURCE } from '../../kernel/host-kernel.ts';

export interface KernelServiceDeps {
  store: Store;
  runner: ProcessRunner;
  clock: Clock;
  kernelsDir: string;
  source?: HostKernelSource;
}

export class KernelService {
  /** Concurrent creates share one import. */
  private readonly imports = new SingleFlight<string, KernelInfo>();
  private readonly deps: KernelServiceDeps;

  constructor(deps: KernelServiceDeps) {
    this.deps = deps;
  }

  list(): KernelInfo[] {
    return this.deps.store.listKernels();
  }

  /** The default kernel: the host's newest distro kernel, imported on first use. */
  async ensureDefault(ctx: Pick<CallContext, 'progress'>): Promise<KernelInfo> {
    const source = this.deps.source ?? HOST_KERNEL_SOURCE;
    const found = findHostKernel(source);
    const existing = this.deps.store.getKernel(hostKernelId(found.version));
    if (existing && fs.existsSync(existing.kernelPath) && fs.existsSync(existing.initrdPath)) return existing;
    return this.imports.run(found.version, async () => {
      ctx.progress({ stage: 'kernel', message: `preparing guest kernel ${found.version} from ${found.vmlinuz}` });
      const kernel = await importHostKernel({ runner: this.deps.runner, kernelsDir: this.deps.kernelsDir, source, createdAt: isoNow(this.deps.clock) });
      this.deps.store.upsertKernel(kernel);
      return kernel;
    });
  }
}
