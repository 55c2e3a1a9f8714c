// Public API of the banger package.
export { BangerClient, connect, type CallOptions, type ConnectOptions } from './client.ts';
export { connectGuestPort, execInGuest, type AgentExecOptions, type AgentExecResult, type TunnelOptions } from './tunnel.ts';
export { BangerError, ERROR_CODES, type ErrorCode } from '../protocol/errors.ts';
export type { ProgressEvent } from '../protocol/jsonrpc.ts';
export type {
  DaemonStatus, ForwardInfo, GuestPort, ImageInfo, KernelInfo, SshTarget, VersionInfo, VmCreateParams, VmHealthResult, VmInfo, VmPortsResult, VmState, VmStatsResult,
} from '../protocol/methods.ts';
export { sshCommand, shellQuote } from '../protocol/ssh-command.ts';
