// banger update [--check] [--to VERSION] [--dry-run] [--force]: installs a signed release over this one.
//
// 1. The manifest (from the URL built into this release; --manifest-url, hidden, for tests) names the target:
//    the newest stable release, or --to.
// 2. Nothing starts while bangerd runs an operation that changes something, or a session into a guest (--force
//    goes ahead anyway).
// 3. SHA256SUMS must verify against the release key built into this banger, the tarball against SHA256SUMS,
//    each body under a cap; only then is anything unpacked, beside the install.
// 4. The new bangerd judges the live store (--check-migrations): a store it cannot use stops the update here.
//    --dry-run stops here too, having changed nothing.
// 5. The swap, the restart and the new doctor (update-install.ts); any failure after the swap rolls back.
import fs from 'node:fs';
import path from 'node:path';
import { BangerError, messageOf } from '../../protocol/errors.ts';
import { installOf, type InstallLayout } from '../../system/install-layout.ts';
import { resolvePaths, type BangerPaths } from '../../system/paths.ts';
import { chooseRelease, compareVersions, parseManifest, parseSha256Sums, RELEASE_LIMITS, signatureValid, type ReleaseEntry } from '../../system/release.ts';
import { fetchCapped, fetchTarball, releaseUrls, type ReleaseFetchOptions } from '../../system/release-fetch.ts';
import { BUILD } from '../../version.ts';
import { withCtrlC } from '../cancel.ts';
import { bangerdBusyWith } from '../daemon-busy.ts';
import type { CliContext } from '../context.ts';
import { printJson } from '../output.ts';
import { proveNewRelease, pruneVersions, rollBack, stagedMigrationCheck, swapIn, unpackRelease, type RunProgram } from '../update-install.ts';

export interface UpdateFlags {
  check?: boolean;
  to?: string;
  dryRun?: boolean;
  force?: boolean;
  json?: boolean;
  /** Hidden: read the manifest from here instead of the URL built in (tests). */
  manifestUrl?: string;
}

export interface UpdateDeps {
  build?: { version: string; releaseManifest: string | null; releaseKey: string | null };
  layout?: InstallLayout | null;
  paths?: BangerPaths;
  fetch?: typeof fetch;
  run?: RunProgram;
}

function noChannel(): BangerError {
  return new BangerError('NOT_INSTALLED', 'this banger was not built as a release: it has no release manifest URL or release key built in', {
    hint: 'a checkout updates with: git pull && bash scripts/setup.sh; releases are built with scripts/release.sh',
  });
}

export async function update(ctx: CliContext, flags: UpdateFlags, deps: UpdateDeps = {}): Promise<number> {
  const build = deps.build ?? BUILD;
  const manifestUrl = flags.manifestUrl ?? build.releaseManifest;
  if (!manifestUrl || !build.releaseKey) throw noChannel();
  const say = (line: string): void => ctx.output.err(`banger update: ${line}`);
  return withCtrlC(ctx, () => say('cancelling; nothing is changed until the download is verified'), async (signal) => {
    const fetchOptions: ReleaseFetchOptions = { signal, ...(deps.fetch ? { fetch: deps.fetch } : {}) };
    const manifest = parseManifest((await fetchCapped(manifestUrl, RELEASE_LIMITS.manifestBytes, fetchOptions)).toString('utf8'));
    const target = chooseRelease(manifest, flags.to);
    const newer = compareVersions(target.version, build.version);
    if (flags.check) {
      if (flags.json) printJson(ctx.output, { current: build.version, latest: target.version, updateAvailable: newer > 0 });
      else ctx.output.out(newer > 0 ? `banger ${target.version} is available (this is ${build.version}): banger update` : `banger ${build.version} is up to date (the newest release is ${target.version})`);
      return 0;
    }
    if (flags.to === undefined && newer <= 0) {
      if (flags.json) printJson(ctx.output, { current: build.version, latest: target.version, updated: false });
      else ctx.output.out(`banger ${build.version} is up to date (the newest release is ${target.version})`);
      return 0;
    }
    if (target.version === build.version) throw new BangerError('INVALID_ARGUMENT', `banger ${build.version} is what runs already`, { hint: 'see banger version' });
    const layout = deps.layout === undefined ? installOf() : deps.layout;
    if (!layout) throw new BangerError('NOT_INSTALLED', 'this banger runs from a checkout, not from an installed release, so there is nothing to swap', { hint: 'update a checkout with: git pull && bash scripts/setup.sh' });
    const paths = deps.paths ?? resolvePaths();
    const inFlight = await bangerdBusyWith(paths.daemonSocket);
    if (inFlight.length > 0 && !flags.force) {
      throw new BangerError('VM_BAD_STATE', `bangerd is busy: ${inFlight.join(', ')}`, { hint: 'let them finish and run banger update again, or go ahead anyway with --force (a running session is cut)' });
    }
    fs.mkdirSync(layout.versionsDir, { recursive: true });
    // On the install's file system, so the verified release moves into versions/ by a rename.
    const workDir = fs.mkdtempSync(path.join(layout.prefix, '.update-'));
    try {
      const staged = await fetchAndVerify(manifestUrl, target, build.releaseKey!, workDir, fetchOptions, say, deps.run);
      const migrations = stagedMigrationCheck(staged, deps.run);
      if (migrations.status === 2) {
        throw new BangerError('UPDATE_FAILED', `banger ${target.version} cannot use this store: ${migrations.message}; nothing was changed`, { hint: `stay on ${build.version}, or pick another release: banger update --to VERSION` });
      }
      say(`store: ${migrations.message}`);
      if (flags.dryRun) {
        const plan = { from: build.version, to: target.version, prefix: layout.prefix, migrates: migrations.status === 1, changed: false };
        if (flags.json) printJson(ctx.output, plan);
        else ctx.output.out(`dry run: banger ${target.version} verified; banger update would swap ${layout.prefix}/current from ${build.version} to it${plan.migrates ? ' and migrate the store' : ''}. Nothing was changed.`);
        return 0;
      }
      return await install(ctx, { layout, paths, staged, version: target.version, migrates: migrations.status === 1, workDir, log: say, ...(deps.run ? { run: deps.run } : {}) }, build.version, flags);
    } finally {
      fs.rmSync(workDir, { recursive: true, force: true });
    }
  });
}

async function fetchAndVerify(manifestUrl: string, target: ReleaseEntry, key: string, workDir: string, options: ReleaseFetchOptions, say: (l: string) => void, run?: RunProgram): Promise<string> {
  const urls = releaseUrls(manifestUrl, target);
  const sums = await fetchCapped(urls.sums, RELEASE_LIMITS.sumsBytes, options);
  const signature = (await fetchCapped(urls.signature, RELEASE_LIMITS.signatureBytes, options)).toString('utf8');
  if (!signatureValid(sums, signature, key)) {
    throw new BangerError('RELEASE_INVALID', `the signature of banger ${target.version}'s SHA256SUMS does not verify with the release key built into this banger`, {
      hint: 'nothing was installed: the release was altered or signed with another key; report it to its publisher',
    });
  }
  const name = path.posix.basename(new URL(urls.tarball).pathname);
  const sha256 = parseSha256Sums(sums.toString('utf8')).get(name);
  if (!sha256) throw new BangerError('RELEASE_INVALID', `the signed SHA256SUMS of banger ${target.version} lists no ${name}`, { hint: 'nothing was installed; report the release to its publisher' });
  say(`downloading banger ${target.version} (${(target.size / 1024 ** 2).toFixed(0)} MiB)`);
  const tarball = path.join(workDir, name);
  await fetchTarball(urls.tarball, tarball, { sha256, maxBytes: target.size }, options);
  say('verified: signature, and the tarball\'s sha256');
  return unpackRelease(tarball, workDir, target.version, run);
}

async function install(ctx: CliContext, plan: Parameters<typeof swapIn>[0], from: string, flags: UpdateFlags): Promise<number> {
  // From here to the end of a rollback, Ctrl-C would leave a half-swapped install: it waits.
  const ignore = (): void => plan.log('finishing the swap first (or its rollback); Ctrl-C is ignored until then');
  process.on('SIGINT', ignore);
  try {
    const swapped = await swapIn(plan);
    try {
      proveNewRelease(plan);
    } catch (err) {
      plan.log(`${messageOf(err)}\nrolling back to ${from}`);
      const problems = await rollBack(plan, swapped);
      throw new BangerError('UPDATE_FAILED', `banger ${plan.version} failed after the swap and was rolled back to ${from}${problems.length ? `, with problems: ${problems.join('; ')}` : ''}: ${messageOf(err)}`, {
        hint: problems.length ? `fix what is listed, then: banger doctor` : `banger ${from} runs again; running VMs kept running. See banger doctor`,
        cause: err,
      });
    }
    const removed = pruneVersions(plan.layout, [swapped.dest, swapped.oldCurrent]);
    if (flags.json) printJson(ctx.output, { from, to: plan.version, prefix: plan.layout.prefix, previous: swapped.oldCurrent, removed });
    else ctx.output.out(`updated banger ${from} → ${plan.version}; ${from} stays in ${swapped.oldCurrent} (back to it: banger update --to ${from})`);
    return 0;
  } finally {
    process.removeListener('SIGINT', ignore);
  }
}
