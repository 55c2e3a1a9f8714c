/** Everything after the first `--` is the guest command and never parsed as banger options. */
export function splitGuestCommand(argv: string[]): { own: string[]; guest: string[] | null } {
  const i = argv.indexOf('--');
  return i < 0 ? { own: argv, guest: null } : { own: argv.slice(0, i), guest: argv.slice(i + 1) };
}
