// A y/N question on the terminal, for commands that delete things unless told -f.
import readline from 'node:readline/promises';

/** Asks `question` on the terminal: true only for y or yes; null when stdin is not a terminal (nobody to ask). */
export type Confirm = (question: string) => Promise<boolean | null>;

export const terminalConfirm: Confirm = async (question) => {
  if (!process.stdin.isTTY) return null;
  // The question goes to stderr, so stdout stays the command's result.
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
};
