// Error codes are part of the public contract: they travel in JSON-RPC error data and map to CLI exit codes.
export const ERROR_CODES = {
  VM_NOT_FOUND: 3,
  VM_NAME_TAKEN: 4,
  VM_BAD_STATE: 5,
  INVALID_ARGUMENT: 2,
  MISSING_TOOL: 6,
  KERNEL_NOT_FOUND: 7,
  IMAGE_NOT_FOUND: 8,
  IMAGE_BUILD_FAILED: 9,
  VMM_FAILED: 10,
  SSH_TIMEOUT: 11,
  NETWORK_FAILED: 12,
  HELPER_UNAVAILABLE: 13,
  HELPER_REFUSED: 14,
  DAEMON_UNAVAILABLE: 15,
  /** An external program (mkfs.ext4, qemu-img, ip, ...) ran and failed; a missing one is MISSING_TOOL. */
  TOOL_FAILED: 16,
  /** The database was written by a newer banger, whose schema this one does not know. */
  STORE_TOO_NEW: 17,
  /** Shipping a workspace into a guest, or exporting its changes, failed. */
  WORKSPACE_FAILED: 18,
  /** The guest agent did not answer (not running yet, hung, or the VM has none). */
  AGENT_UNAVAILABLE: 19,
  /** The guest agent answered that it could not do what was asked. */
  AGENT_FAILED: 20,
  /** A release did not verify: its signature, a hash, its size or its manifest (banger update). */
  RELEASE_INVALID: 21,
  /** An update failed after it began to change the install, and was rolled back (or could not be). */
  UPDATE_FAILED: 22,
  /** banger update runs from a checkout of the repository or another tree that is not an installed release. */
  NOT_INSTALLED: 23,
  CANCELLED: 130,
  INTERNAL: 70,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorData {
  code: ErrorCode;
  hint?: string;
}

/** A failure the user can act on: a stable code, a message, and a hint naming the next thing to do. */
export class BangerError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'BangerError';
    this.code = code;
    this.hint = options.hint;
  }

  toData(): ErrorData {
    return this.hint === undefined ? { code: this.code } : { code: this.code, hint: this.hint };
  }
}

/** Exit status the CLI uses for a given error code. */
export function exitCodeFor(code: ErrorCode): number {
  return ERROR_CODES[code];
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The message followed by those of its causes that it does not already contain, so wrapping hides no detail. */
export function messageWithCauses(err: unknown): string {
  let message = messageOf(err);
  let cause = err instanceof Error ? err.cause : undefined;
  for (let depth = 0; cause !== undefined && cause !== null && depth < 5; depth++) {
    const more = messageOf(cause);
    if (more !== '' && !message.includes(more)) message += `: ${more}`;
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return message;
}
