// The ELF vmlinux Firecracker boots, for a kernel banger keeps as a bzImage (the host's vmlinuz): extracted once,
// next to the kernel in its directory, and reused.
import fs from 'node:fs';
import path from 'node:path';
import type { KernelInfo } from '../protocol/methods.ts';
import type { ProcessRunner } from '../system/process.ts';
import { extractVmlinux } from './kernel-format.ts';

export async function elfKernelOf(kernel: KernelInfo, runner: ProcessRunner): Promise<string> {
  if (kernel.format === 'elf') return kernel.kernelPath;
  const out = path.join(path.dirname(kernel.kernelPath), 'vmlinux.elf');
  if (!fs.existsSync(out)) await extractVmlinux(kernel.kernelPath, out, runner);
  return out;
}
