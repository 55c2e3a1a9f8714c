// The guest agent binary, built from agent/ by scripts/build-agent.sh into dist-agent/ beside src/ and dist/.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BangerError } from '../protocol/errors.ts';

/** Where the build puts it, for a module two levels below the repository (src/system or dist/system). */
export function agentBinaryPath(from: string = import.meta.url): string {
  return fileURLToPath(new URL('../../dist-agent/banger-agent', from));
}

/** The agent's bytes; MISSING_TOOL naming the build command when it was never built. */
export function readAgentBinary(file: string = agentBinaryPath()): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new BangerError('MISSING_TOOL', `the guest agent ${file} is missing; every VM carries it`, {
      hint: 'build it: bash scripts/build-agent.sh (or run bash scripts/setup.sh, which does)', cause: err,
    });
  }
}
