// banger ssh-config [--install | --uninstall] [--json]: lets plain `ssh NAME.vm` (and scp, rsync, an editor's
// remote mode) reach the running VM NAME. banger keeps its settings in a file of its own, written each time this
// runs; ~/.ssh/config needs one Include line for it, at the very top: ssh applies an Include that comes after a
// Host line only to that Host. The Include sits between markers, so --uninstall removes exactly what --install added.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BangerError, messageOf } from '../../protocol/errors.ts';
import { shellQuote } from '../../protocol/ssh-command.ts';
import { writeFileAtomic } from '../../system/atomic-write.ts';
import { BIN_DIR } from '../../system/helper-command.ts';
import { assertUsablePaths, resolvePaths } from '../../system/paths.ts';
import type { CliContext } from '../context.ts';
import { printJson } from '../output.ts';

export const BLOCK_START = '# >>> banger >>>';
export const BLOCK_END = '# <<< banger <<<';

export interface SshConfigFlags {
  install?: boolean;
  uninstall?: boolean;
  json?: boolean;
}

export interface SshConfigResult {
  /** The line ~/.ssh/config needs. */
  includeLine: string;
  /** The user's ssh config (~/.ssh/config). */
  configPath: string;
  /** Whether that file has banger's block with this Include, after the command. */
  installed: boolean;
  /** Whether the command changed that file. */
  changed: boolean;
}

/**
 * One argument of an ssh_config option that takes a file: in double quotes when it holds whitespace. ssh_config
 * has no way to write a double quote inside one (assertUsablePaths keeps them out of banger's paths).
 */
function configWord(value: string): string {
  if (value.includes('"')) throw new Error(`ssh_config cannot carry a path with a double quote: ${value}`);
  return /\s/.test(value) ? `"${value}"` : value;
}

/** A program for ProxyCommand or KnownHostsCommand: ssh expands %-tokens in the line, then runs it with sh or splits it like sh. */
function commandWord(value: string): string {
  return shellQuote(value).replaceAll('%', '%%');
}

/** The file banger's Include points at: how ssh reaches NAME.vm, through banger, with the VM's pinned host key. */
export function bangerSshConfig(o: { keyPath: string; banger: string }): string {
  const banger = commandWord(o.banger);
  return [
    '# Written by banger. `banger ssh-config --uninstall` removes the Include that points here.',
    '# banger ssh-config rewrites this file each time it runs; put settings of your own in ~/.ssh/config.',
    'Host *.vm',
    '  User root',
    `  IdentityFile ${configWord(o.keyPath)}`,
    '  IdentitiesOnly yes',
    `  ProxyCommand ${banger} ssh-proxy %n %p`,
    // OpenSSH 8.5 or later: an older ssh does not know KnownHostsCommand and refuses the whole configuration.
    `  KnownHostsCommand ${banger} ssh-known-hosts %H`,
    '  UserKnownHostsFile /dev/null',
    '  GlobalKnownHostsFile /dev/null',
    '  StrictHostKeyChecking yes',
    '  LogLevel ERROR',
    '',
  ].join('\n');
}

/** The marker-fenced block --install puts at the top of ~/.ssh/config. */
export function bangerBlock(includeLine: string): string {
  return `${BLOCK_START}\n${includeLine}\n${BLOCK_END}\n`;
}

/** Where each banger block in `text` starts and ends (the end marker's line ending included). */
export function findBangerBlocks(text: string, file: string): Array<{ start: number; end: number }> {
  const blocks: Array<{ start: number; end: number }> = [];
  const broken = (what: string): BangerError => new BangerError('INVALID_ARGUMENT', `${file} has ${what}`, {
    hint: `fix or remove the lines between "${BLOCK_START}" and "${BLOCK_END}" in ${file} by hand, then run: banger ssh-config --install`,
  });
  let open: number | null = null;
  for (let at = 0; at < text.length;) {
    const newline = text.indexOf('\n', at);
    const next = newline === -1 ? text.length : newline + 1;
    const line = text.slice(at, newline === -1 ? text.length : newline).trim();
    if (line === BLOCK_START) {
      if (open !== null) throw broken(`"${BLOCK_START}" twice without "${BLOCK_END}" between`);
      open = at;
    } else if (line === BLOCK_END) {
      if (open === null) throw broken(`"${BLOCK_END}" without "${BLOCK_START}" before it`);
      blocks.push({ start: open, end: next });
      open = null;
    }
    at = next;
  }
  if (open !== null) throw broken(`"${BLOCK_START}" without "${BLOCK_END}" after it`);
  return blocks;
}

function withoutBlocks(text: string, blocks: ReadonlyArray<{ start: number; end: number }>): string {
  let out = '';
  let at = 0;
  for (const b of blocks) {
    out += text.slice(at, b.start);
    at = b.end;
  }
  return out + text.slice(at);
}

/**
 * ~/.ssh/config with banger's block, or null when it has it already. The block goes first, whatever the file
 * holds; a block from an earlier install with another Include (BANGER_HOME changed) is replaced.
 */
export function installedText(text: string, includeLine: string, file: string): string | null {
  const block = bangerBlock(includeLine);
  const blocks = findBangerBlocks(text, file);
  if (blocks.length === 1 && text.slice(blocks[0]!.start, blocks[0]!.end) === block) return null;
  return block + withoutBlocks(text, blocks);
}

/** ~/.ssh/config without banger's blocks, byte for byte what it was before --install; null when it has none. */
export function uninstalledText(text: string, file: string): string | null {
  const blocks = findBangerBlocks(text, file);
  return blocks.length === 0 ? null : withoutBlocks(text, blocks);
}

function readIfExists(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** A file operation on the user's ssh files, with what to check when it fails. */
function onSshFile<T>(what: string, file: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof BangerError) throw err;
    throw new BangerError('INVALID_ARGUMENT', `cannot ${what} ${file}: ${messageOf(err)}`, {
      hint: `check the owner and mode of ${path.dirname(file)} and the files in it (ls -la ${path.dirname(file)})`,
      cause: err,
    });
  }
}

export async function sshConfig(ctx: CliContext, flags: SshConfigFlags, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (flags.install && flags.uninstall) {
    throw new BangerError('INVALID_ARGUMENT', '--install and --uninstall do not go together', { hint: 'run banger ssh-config --install, or banger ssh-config --uninstall' });
  }
  const paths = resolvePaths(env);
  assertUsablePaths(paths);
  const includedFile = path.join(paths.sshDir, 'ssh_config');
  const includeLine = `Include ${configWord(includedFile)}`;
  const sshDir = path.join(env.HOME ?? os.homedir(), '.ssh');
  const configPath = path.join(sshDir, 'config');
  if (!flags.uninstall) {
    // The key is the one the daemon makes in this directory (id_ed25519) and puts into every guest.
    const text = bangerSshConfig({ keyPath: path.join(paths.sshDir, 'id_ed25519'), banger: path.join(BIN_DIR, 'banger') });
    onSshFile('write', includedFile, () => {
      fs.mkdirSync(paths.sshDir, { recursive: true, mode: 0o700 });
      writeFileAtomic(includedFile, text, 0o600);
    });
  }
  const current = onSshFile('read', configPath, () => readIfExists(configPath));
  let result: SshConfigResult;
  if (flags.install) {
    const next = installedText(current ?? '', includeLine, configPath);
    if (next !== null) {
      onSshFile('write', configPath, () => {
        if (!fs.existsSync(sshDir)) {
          fs.mkdirSync(sshDir, { mode: 0o700 });
          fs.chmodSync(sshDir, 0o700);
        }
        writeFileAtomic(configPath, next, 0o600);
      });
    }
    result = { includeLine, configPath, installed: true, changed: next !== null };
  } else if (flags.uninstall) {
    const next = current === null ? null : uninstalledText(current, configPath);
    if (next !== null) onSshFile('write', configPath, () => writeFileAtomic(configPath, next));
    result = { includeLine, configPath, installed: false, changed: next !== null };
  } else {
    result = { includeLine, configPath, installed: current !== null && installedText(current, includeLine, configPath) === null, changed: false };
  }
  if (flags.json) printJson(ctx.output, result);
  else ctx.output.out(describe(result, flags, current !== null));
  return 0;
}

function describe(r: SshConfigResult, flags: SshConfigFlags, existed: boolean): string {
  if (flags.install) {
    return r.changed
      ? `added "${r.includeLine}" at the top of ${r.configPath}: ssh NAME.vm now reaches the running VM NAME`
      : `${r.configPath} already includes banger's ssh settings; nothing changed`;
  }
  if (flags.uninstall) {
    if (r.changed) return `removed banger's Include from ${r.configPath}`;
    return existed ? `${r.configPath} has no banger block; nothing changed` : `${r.configPath} does not exist; nothing changed`;
  }
  return `${r.includeLine}\n# ${r.installed
    ? `${r.configPath} has this line, so ssh NAME.vm reaches the running VM NAME`
    : `put this line at the top of ${r.configPath} (or run: banger ssh-config --install), then ssh NAME.vm reaches the running VM NAME`}`;
}
