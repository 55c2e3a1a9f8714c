// What bangerd is in the middle of, for the commands that restart it (banger update, banger system restart): its
// operations that change something, and the sessions into guests it carries. None when it is not running.
import { connect } from '../sdk/client.ts';
import { isSocketAlive } from '../system/socket-server.ts';

export async function bangerdBusyWith(socketPath: string): Promise<string[]> {
  if (!(await isSocketAlive(socketPath))) return [];
  const client = await connect({ autoStart: false, socketPath });
  try {
    const status = await client.status();
    return [...status.operations, ...(status.sessions > 0 ? [`${status.sessions} session(s) into guests`] : [])];
  } finally {
    client.close();
  }
}
