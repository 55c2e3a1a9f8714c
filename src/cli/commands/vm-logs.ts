import type { CliContext } from '../context.ts';

/** banger vm logs NAME [-f]: the guest's serial console. */
export async function vmLogs(ctx: CliContext, ref: string, flags: { follow?: boolean }): Promise<number> {
  const client = await ctx.client();
  let { data, offset } = await client.vmLogs(ref);
  process.stdout.write(data);
  if (!flags.follow) return 0;
  let stop = false;
  process.once('SIGINT', () => {
    stop = true;
  });
  while (!stop) {
    await new Promise((r) => setTimeout(r, 300));
    ({ data, offset } = await client.vmLogs(ref, offset));
    process.stdout.write(data);
  }
  return 0;
}
