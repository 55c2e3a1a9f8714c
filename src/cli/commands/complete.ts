// banger __complete WORDS...: what the completion scripts (banger completion SHELL) run at every TAB, with the
// words typed after `banger` (the last one is the word being completed, '' after a space). Prints the kind of
// completion and the candidates (completion-engine.ts); always exits 0 and never prints an error, since its
// output lands at a shell prompt. VM, image and kernel names come from bangerd only when it is already running.
import type { Command } from 'commander';
import { offerFor, renderOffer, type LiveKind } from '../completion-engine.ts';
import { liveNames } from '../completion-names.ts';
import type { Output } from '../output.ts';

export type LiveNames = (kind: LiveKind) => Promise<string[]>;

export async function complete(output: Output, program: Command, words: readonly string[], names: LiveNames = liveNames): Promise<number> {
  try {
    const offer = offerFor(program, words.length > 0 ? words : ['']);
    const live = offer.live ? await names(offer.live) : [];
    output.out(renderOffer(offer, live).join('\n'));
  } catch {
    // Nothing to offer is the answer for a line the tree cannot make sense of.
  }
  return 0;
}
