import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { HelperClient } from '../../src/daemon/helper-client.ts';
import { fails } from '../fakes/expect-error.ts';

describe('HelperClient', () => {
  it('reports bangerd-root, not bangerd, when it is missing or goes away mid-call, with the start hint', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-helperclient-'));
    const socket = path.join(dir, 'bangerd-root.sock');
    const hint = 'start it: sudo bangerd-root ...';
    try {
      await assert.rejects(new HelperClient(socket, hint).ping(), (err: unknown) => {
        fails('HELPER_UNAVAILABLE', /bangerd-root is not running/)(err);
        assert.equal((err as { hint?: string }).hint, hint);
        return true;
      });
      // A helper that dies while working on a request.
      const server = net.createServer((c) => c.once('data', () => c.destroy()));
      await new Promise<void>((resolve) => server.listen(socket, resolve));
      try {
        const client = new HelperClient(socket, hint);
        await assert.rejects(client.ping(), (err: unknown) => {
          fails('HELPER_UNAVAILABLE', /connection to bangerd-root closed before helper.ping finished/)(err);
          assert.equal((err as { hint?: string }).hint, hint);
          return true;
        });
        client.close();
      } finally {
        server.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
