// The flags that say what to ship from a host checkout, shared by vm run PATH and vm workspace prepare.
import type { WorkspaceSource } from '../protocol/methods.ts';

export interface WorkspaceFlags {
  includeUntracked?: boolean;
  branch?: string;
  from?: string;
  /** false with --no-bootstrap. */
  bootstrap?: boolean;
}

export function workspaceParams(absPath: string, flags: WorkspaceFlags): WorkspaceSource {
  return {
    path: absPath,
    ...(flags.includeUntracked ? { includeUntracked: true } : {}),
    ...(flags.branch !== undefined ? { branch: flags.branch } : {}),
    ...(flags.from !== undefined ? { from: flags.from } : {}),
  };
}
