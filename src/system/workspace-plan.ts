// What `vm run PATH` and `vm workspace prepare` would ship from a host checkout, decided before any VM exists:
// the repository's top level, its HEAD, the exact file list, and every reason to refuse. Shared by the CLI
// (refusals and --dry-run without touching the daemon) and bangerd (which plans again before it ships).
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../protocol/errors.ts';
import type { ProcessRunner } from './process.ts';
import { runChecked } from './process.ts';

/** Files whose presence means the repository pins its tools with mise. */
export const MISE_CONFIG_FILES = ['.mise.toml', 'mise.toml', '.tool-versions'] as const;

/** Where the workspace lands in the guest. */
export const GUEST_WORKSPACE_DIR = '/root/repo';

export interface PlanOptions {
  /** Untracked, non-ignored files too (default: git-tracked files only). */
  includeUntracked?: boolean;
  /** A guest-only branch to create. */
  branch?: string;
  /** Where that branch starts (a ref on the host); without it, at HEAD with the local changes. */
  from?: string;
  signal?: AbortSignal;
}

export interface WorkspacePlan {
  /** The repository's top level (absolute). */
  root: string;
  /** HEAD's commit. */
  head: string;
  /** The branch HEAD is on, or null when detached. */
  headBranch: string | null;
  /** The commit the guest checkout starts from: `from` resolved, else HEAD. */
  base: string;
  branch: string | null;
  /** Paths relative to `root`, as git prints them (any byte but NUL), in git's order. */
  files: string[];
  /** How many of `files` git does not track. */
  untracked: number;
  /** Whether the index differs from HEAD (staged changes, carried over as staged). */
  staged: boolean;
  /** The mise configuration file that triggers the tooling bootstrap, if the repository has one among `files`. */
  bootstrap: string | null;
  /** The effective git identity for this repository (its own settings win over the global ones). */
  user: { name: string | null; email: string | null };
}

/** Branch names git accepts, restricted to what is safe to pass on (no leading dash, no spaces or control characters). */
const BRANCH_PATTERN = /^(?!-)(?!.*\.\.)(?!.*\/\/)(?!.*@\{)[A-Za-z0-9._/+-]{1,200}(?<![./])$/;

function refused(message: string, hint: string): BangerError {
  return new BangerError('INVALID_ARGUMENT', message, { hint });
}

async function git(runner: ProcessRunner, cwd: string, args: readonly string[], signal?: AbortSignal) {
  return runner.run('git', ['-C', cwd, ...args], { ...(signal ? { signal } : {}) });
}

/** Splits NUL-terminated output. */
function nulList(text: string): string[] {
  return text.split('\0').filter((entry) => entry !== '');
}

/** Refuses what cannot be shipped, before anything is created, and lists what would be. */
export async function planWorkspace(runner: ProcessRunner, dir: string, options: PlanOptions = {}): Promise<WorkspacePlan> {
  const { signal } = options;
  const abs = path.resolve(dir);
  if (options.from !== undefined && options.branch === undefined) {
    throw refused('--from needs --branch: it says where the guest-only branch starts', 'add --branch NAME, or leave out --from to start at HEAD');
  }
  if (options.branch !== undefined && !BRANCH_PATTERN.test(options.branch)) {
    throw refused(`${JSON.stringify(options.branch)} is not a branch name banger accepts`, 'use letters, digits and . _ / + - (not starting with "-")');
  }
  let stat: fs.Stats;
  try {
    stat = fs.statSync(abs);
  } catch {
    throw refused(`${abs} does not exist`, 'give the path of a directory inside a git repository');
  }
  if (!stat.isDirectory()) throw refused(`${abs} is not a directory`, 'give the path of a directory inside a git repository');

  const where = await git(runner, abs, ['rev-parse', '--is-bare-repository', '--is-inside-git-dir'], signal);
  if (where.code !== 0) {
    if (/dubious ownership/.test(where.stderr)) {
      throw refused(`git refuses ${abs}: it belongs to another user`, `run banger as the repository's owner, or mark it safe: git config --global --add safe.directory ${abs}`);
    }
    throw refused(`${abs} is not inside a git repository`, `make it one (cd ${abs} && git init && git add -A && git commit -m init), or run without a path: banger vm run -- CMD`);
  }
  const [bare, insideGitDir] = where.stdout.trim().split('\n');
  if (bare === 'true') throw refused(`${abs} is a bare repository: it has no files to ship`, 'give the path of a checkout (a clone with a working tree)');
  if (insideGitDir === 'true') throw refused(`${abs} is inside a .git directory`, 'give the path of the checkout itself');
  const root = (await runChecked(runner, 'git', ['-C', abs, 'rev-parse', '--show-toplevel'], { ...(signal ? { signal } : {}) })).stdout.trim();

  const head = await git(runner, root, ['rev-parse', '-q', '--verify', 'HEAD^{commit}'], signal);
  if (head.code !== 0) throw refused(`${root} has no commits yet`, 'commit first (git add -A && git commit -m init); the guest checkout starts from a commit');
  const headCommit = head.stdout.trim();

  // "MODE OBJECT STAGE\tPATH" per index entry: the modes find submodules (gitlinks), the paths are what git tracks.
  const index = nulList((await runChecked(runner, 'git', ['-C', root, 'ls-files', '-z', '--stage'], { ...(signal ? { signal } : {}) })).stdout);
  if (index.some((entry) => entry.startsWith('160000 ')) || fs.existsSync(path.join(root, '.gitmodules'))) {
    throw refused(`${root} has submodules, which banger does not ship`, 'run banger on a repository without submodules, or on the submodule\'s own checkout');
  }

  let base = headCommit;
  if (options.from !== undefined) {
    const from = await git(runner, root, ['rev-parse', '-q', '--verify', '--end-of-options', `${options.from}^{commit}`], signal);
    if (from.code !== 0) throw refused(`--from ${options.from}: no such commit in ${root}`, 'name a branch, tag or commit that exists: git log --oneline');
    base = from.stdout.trim();
  }

  const tracked = index.map((entry) => entry.slice(entry.indexOf('\t') + 1));
  const deleted = new Set(nulList((await runChecked(runner, 'git', ['-C', root, 'ls-files', '-z', '--deleted'], { ...(signal ? { signal } : {}) })).stdout));
  const files: string[] = [];
  const seen = new Set<string>();
  for (const file of tracked) {
    // A file with a merge conflict is listed once per stage.
    if (deleted.has(file) || seen.has(file)) continue;
    seen.add(file);
    files.push(file);
  }
  let untracked = 0;
  if (options.includeUntracked) {
    const others = await runChecked(runner, 'git', ['-C', root, 'ls-files', '-z', '--others', '--exclude-standard'], { ...(signal ? { signal } : {}) });
    for (const file of nulList(others.stdout)) {
      if (seen.has(file)) continue;
      seen.add(file);
      files.push(file);
      untracked++;
    }
  }
  const diff = await git(runner, root, ['diff', '--cached', '--quiet', 'HEAD', '--'], signal);
  const headBranch = await git(runner, root, ['symbolic-ref', '-q', '--short', 'HEAD'], signal);
  const config = async (key: string): Promise<string | null> => {
    const r = await git(runner, root, ['config', '--get', key], signal);
    return r.code === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : null;
  };
  return {
    root,
    head: headCommit,
    headBranch: headBranch.code === 0 ? headBranch.stdout.trim() : null,
    base,
    branch: options.branch ?? null,
    files,
    untracked,
    staged: diff.code === 1,
    bootstrap: MISE_CONFIG_FILES.find((name) => seen.has(name)) ?? null,
    user: { name: await config('user.name'), email: await config('user.email') },
  };
}

/** The refusal for a repository that pins tools (mise) in a VM without outbound network. */
export function bootstrapNeedsNat(config: string, vmName: string | null): BangerError {
  return new BangerError('INVALID_ARGUMENT', `${config} asks for tools (mise install), which needs outbound network, and ${vmName ?? 'the VM'} would have no NAT`, {
    hint: 'give the VM outbound access with --nat, or skip the bootstrap with --no-bootstrap',
  });
}

/** A path as one printable line: JSON-quoted when it holds anything a terminal would not show as itself. */
export function printablePath(file: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f"\\]/.test(file) ? JSON.stringify(file) : file;
}
