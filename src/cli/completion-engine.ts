// What the shells' completion scripts get from `banger __complete WORDS...`: the candidates for the last word of
// a command line being typed, read from the same commander tree that parses it (buildProgram), so completion
// cannot drift from the commands. Pure: live names from bangerd come in from the caller (completion-names.ts).
//
// Our own walk rather than @bomb.sh/tab (0.0.22, evaluated for this): its commander adapter registers neither
// aliases (`vm rm`, `vm ls`) nor path arguments (every answer turns the shell's file completion off, so
// `vm run ./re<TAB>` would offer nothing), its value callbacks are synchronous (every TAB, even on `vm st`,
// would have to ask bangerd first), it keeps the tree in a module-wide singleton, and its bash script evals
// the typed words unquoted, so a `$(...)` on the line would run at TAB.
import type { Argument, Command, Option } from 'commander';
import { KILL_SIGNALS } from '../protocol/kill-signals.ts';
import type { ExecVia } from './commands/vm-exec.ts';
import { SHELLS } from './completion-scripts.ts';

/** Names that only bangerd knows. */
export type LiveKind = 'vms' | 'images' | 'kernels';

/** Where the values of an argument or an option's value come from. */
export type ValueSource = { live: LiveKind } | { paths: 'files' | 'dirs' } | { values: readonly string[] };

export interface Candidate {
  value: string;
  description?: string;
}

/** What to offer for the word under the cursor. */
export interface Offer {
  /** Subcommands, flags or enumerated values that start with the word. */
  candidates: Candidate[];
  /** Names to ask bangerd for (and filter like the candidates). */
  live: LiveKind | null;
  /** The shell adds host file or directory names itself. */
  paths: 'files' | 'dirs' | null;
  /** Kept in front of every value: `--via=` when the word is `--via=ag`. */
  prefix: string;
  /** The part of the word the values must start with. */
  partial: string;
  /** Values already on the line for a variadic argument (`vm stop a b`), not offered again. */
  given: string[];
}

const VIAS: readonly ExecVia[] = ['auto', 'agent', 'ssh'];

/** By the placeholder program.ts gives an argument or an option's value: `<vm...>`, `--image <image>`. */
const BY_PLACEHOLDER: Readonly<Record<string, ValueSource>> = {
  vm: { live: 'vms' },
  image: { live: 'images' },
  kernel: { live: 'kernels' },
  file: { paths: 'files' },
  dir: { paths: 'dirs' },
  path: { paths: 'dirs' },
};

/**
 * Where a placeholder says too little: `COMMAND PATH --long-flag` or `COMMAND PATH argument-name`. A unit test
 * checks that each key still names an option or argument of the tree.
 */
export const BY_NAME: Readonly<Record<string, ValueSource>> = {
  'vm exec --via': { values: VIAS },
  'vm kill --signal': { values: KILL_SIGNALS.map((s) => s.slice('SIG'.length)) },
  'image make-bundle --from-image': { live: 'images' },
  'kernel show name': { live: 'kernels' },
  'kernel rm name': { live: 'kernels' },
  'completion shell': { values: SHELLS },
};

/** The candidates for the last of `words` (the words after `banger`; the last is '' after a space). */
export function offerFor(program: Command, words: readonly string[]): Offer {
  const current = words.at(-1) ?? '';
  const before = words.slice(0, -1);
  let cmd = program;
  const path: string[] = [];
  const positionals: string[] = [];
  let pendingValue: Option | null = null;
  let afterDashes = false;
  for (const word of before) {
    if (afterDashes) continue;
    if (pendingValue) {
      pendingValue = null;
      continue;
    }
    if (word === '--') {
      afterDashes = true;
    } else if (word.startsWith('-') && word.length > 1) {
      const option = findOption(cmd, word);
      if (option && takesValue(option) && !word.includes('=')) pendingValue = option;
    } else {
      const sub = positionals.length === 0 ? cmd.commands.find((c) => c.name() === word || c.aliases().includes(word)) : undefined;
      if (sub) {
        cmd = sub;
        path.push(sub.name());
      } else {
        positionals.push(word);
      }
    }
  }
  const offer: Offer = { candidates: [], live: null, paths: null, prefix: '', partial: current, given: [] };
  // After `--` comes the guest's command line: nothing here knows its words.
  if (afterDashes) return offer;
  if (pendingValue) return withSource(offer, sourceOfOption(path, pendingValue), current, '');
  if (current.startsWith('--') && current.includes('=')) {
    const at = current.indexOf('=');
    const option = findOption(cmd, current.slice(0, at));
    return option && takesValue(option) ? withSource(offer, sourceOfOption(path, option), current.slice(at + 1), current.slice(0, at + 1)) : offer;
  }
  const help = cmd.createHelp();
  if (current.startsWith('-')) {
    for (const option of help.visibleOptions(cmd)) {
      for (const flag of [option.long, option.short]) {
        if (flag?.startsWith(current)) offer.candidates.push({ value: flag, description: option.description });
      }
    }
    return offer;
  }
  if (cmd.commands.length > 0 && positionals.length === 0) {
    for (const sub of help.visibleCommands(cmd)) {
      if (sub.name().startsWith(current)) offer.candidates.push({ value: sub.name(), description: sub.summary() || sub.description() });
    }
    return offer;
  }
  const argument = argumentAt(cmd, positionals.length);
  if (!argument) return offer;
  const withArg = withSource(offer, sourceOfArgument(path, argument), current, '');
  if (argument.variadic) withArg.given = positionals.slice(cmd.registeredArguments.length - 1);
  return withArg;
}

/** The lines `banger __complete` prints: the kind first (words, files or dirs), then `VALUE\tDESCRIPTION`. */
export function renderOffer(offer: Offer, liveNames: readonly string[]): string[] {
  const seen = new Set(offer.given);
  const lines = [offer.paths ?? 'words'];
  const add = (value: string, description?: string): void => {
    if (seen.has(value) || !value.startsWith(offer.partial)) return;
    seen.add(value);
    // A tab or newline in a value would break the line format; no name banger accepts has one.
    if (/[\t\n]/.test(value)) return;
    lines.push(description ? `${offer.prefix}${value}\t${oneLine(description)}` : `${offer.prefix}${value}`);
  };
  for (const c of offer.candidates) add(c.value, c.description);
  for (const name of liveNames) add(name);
  return lines;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function withSource(offer: Offer, source: ValueSource | null, partial: string, prefix: string): Offer {
  const o = { ...offer, partial, prefix };
  if (!source) return o;
  if ('live' in source) o.live = source.live;
  else if ('paths' in source) o.paths = source.paths;
  else o.candidates = source.values.filter((v) => v.startsWith(partial)).map((value) => ({ value }));
  return o;
}

function takesValue(option: Option): boolean {
  return option.required || option.optional;
}

/** `--via`, `-s`, or `--via=x`'s flag; the help option (which commander adds itself) takes no value anyway. */
function findOption(cmd: Command, word: string): Option | undefined {
  const flag = word.includes('=') && word.startsWith('--') ? word.slice(0, word.indexOf('=')) : word;
  return cmd.options.find((o) => o.long === flag || o.short === flag);
}

function argumentAt(cmd: Command, index: number): Argument | undefined {
  const args = cmd.registeredArguments;
  const last = args.at(-1);
  return index < args.length ? args[index] : last?.variadic ? last : undefined;
}

function sourceOfOption(path: readonly string[], option: Option): ValueSource | null {
  const named = BY_NAME[[...path, option.long ?? option.short].join(' ')];
  if (named) return named;
  const placeholder = /[<[]([^>\]]+?)(?:\.\.\.)?[>\]]/.exec(option.flags)?.[1];
  return placeholder ? (BY_PLACEHOLDER[placeholder] ?? null) : null;
}

function sourceOfArgument(path: readonly string[], argument: Argument): ValueSource | null {
  return BY_NAME[[...path, argument.name()].join(' ')] ?? BY_PLACEHOLDER[argument.name()] ?? null;
}
