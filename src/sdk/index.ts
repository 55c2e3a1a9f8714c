// Public API of the banger package.
export { BangerClient, connect, type CallOptions, type ConnectOptions } from './client.ts';
export { BangerError, ERROR_CODES, type ErrorCode } from '../protocol/errors.ts';
export type { ProgressEvent } from '../protocol/jsonrpc.ts';
export type { DaemonStatus, ImageInfo, KernelInfo, SshTarget, VersionInfo, VmCreateParams, VmInfo, VmState } from '../protocol/methods.ts';
export { sshCommand, shellQuote } from '../protocol/ssh-command.ts';
