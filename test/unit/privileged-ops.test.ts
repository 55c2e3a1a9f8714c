import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { HelperClient, HELPER_START_TIMEOUT_MS, waitForHelperSocket } from '../../src/daemon/helper-client.ts';
import { BangerError } from '../../src/protocol/errors.ts';
import { serve, type Handler } from '../../src/protocol/jsonrpc.ts';
import { fails } from '../fakes/expect-error.ts';
import { FakeClock } from '../fakes/fake-clock.ts';

/** A stand-in bangerd-root in this process: answers helper.ping on `socket` and counts the calls. */
async function listenAsHelper(socket: string, pings: { count: number }): Promise<net.Server> {
  const server = net.createServer();
  const handlers = new Map<string, Handler>([['helper.ping', async () => {
    pings.count++;
    return { pid: 4242, version: 'test', network: { bridge: 'banger0', subnet: '172.30.0.0/24', netns: null } };
  }]]);
  serve(server, handlers);
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return server;
}

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

  describe('when bangerd-root is gone', () => {
    let dir: string;
    let socket: string;
    let servers: net.Server[];
    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-helperclient-'));
      socket = path.join(dir, 'bangerd-root.sock');
      servers = [];
    });
    afterEach(() => {
      for (const server of servers) server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('starts it again once and retries the call', async () => {
      const pings = { count: 0 };
      let restarts = 0;
      const client = new HelperClient(socket, {
        startHint: 'start it: sudo bangerd-root ...',
        restart: async () => {
          restarts++;
          servers.push(await listenAsHelper(socket, pings));
        },
      });
      try {
        assert.equal((await client.ping()).pid, 4242);
        assert.equal(restarts, 1);
        assert.equal(pings.count, 1);
        // The helper is up now: later calls use it without another restart.
        await client.ping();
        assert.equal(restarts, 1);
      } finally {
        client.close();
      }
    });

    it('shares one restart among the calls that find it gone at the same time', async () => {
      const pings = { count: 0 };
      let restarts = 0;
      const client = new HelperClient(socket, {
        restart: async () => {
          restarts++;
          servers.push(await listenAsHelper(socket, pings));
        },
      });
      try {
        const pongs = await Promise.all([client.ping(), client.ping(), client.ping()]);
        assert.deepEqual(pongs.map((p) => p.pid), [4242, 4242, 4242]);
        assert.equal(restarts, 1);
        assert.equal(pings.count, 3);
      } finally {
        client.close();
      }
    });

    it('reports a restart that fails, and tries it again only on a later call', async () => {
      let restarts = 0;
      const client = new HelperClient(socket, {
        restart: async () => {
          restarts++;
          throw new BangerError('HELPER_UNAVAILABLE', 'bangerd-root stopped answering and did not start again', { hint: 'see bangerd-root.log' });
        },
      });
      await assert.rejects(client.ping(), fails('HELPER_UNAVAILABLE', /did not start again/, { hint: true }));
      assert.equal(restarts, 1);
      await assert.rejects(client.ping(), fails('HELPER_UNAVAILABLE'));
      assert.equal(restarts, 2);
    });

    it('reports HELPER_UNAVAILABLE with the start hint when the restarted helper still does not answer', async () => {
      const client = new HelperClient(socket, { startHint: 'start it: sudo bangerd-root ...', restart: async () => undefined });
      await assert.rejects(client.ping(), (err: unknown) => {
        fails('HELPER_UNAVAILABLE', /bangerd-root is not running/)(err);
        assert.equal((err as BangerError).hint, 'start it: sudo bangerd-root ...');
        return true;
      });
    });

    it('without a restart (bangerd not root) fails at once with the hint', async () => {
      const client = new HelperClient(socket, { startHint: 'start it: sudo /x/bin/bangerd-root --owner 1000:1000' });
      await assert.rejects(client.ping(), (err: unknown) => {
        fails('HELPER_UNAVAILABLE')(err);
        assert.match((err as BangerError).hint!, /^start it: sudo \/x\/bin\/bangerd-root --owner/);
        return true;
      });
    });
  });

  describe('waitForHelperSocket', () => {
    it('returns once the started helper answers', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-helperwait-'));
      const socket = path.join(dir, 'bangerd-root.sock');
      const server = await listenAsHelper(socket, { count: 0 });
      try {
        await waitForHelperSocket({ socketPath: socket, child: { exited: false }, logFile: path.join(dir, 'log'), startCommand: 'sudo x', clock: new FakeClock() });
      } finally {
        server.close();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('gives up at the deadline, in fake time, with the log tail and the command that starts it by hand', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-helperwait-'));
      const log = path.join(dir, 'bangerd-root.log');
      fs.writeFileSync(log, 'starting\nbangerd-root: another process is already serving it\n');
      const clock = new FakeClock();
      const start = clock.now();
      try {
        await assert.rejects(
          waitForHelperSocket({ socketPath: path.join(dir, 'none.sock'), child: { exited: false }, logFile: log, startCommand: 'sudo /x/bangerd-root --owner 0:0', clock }),
          (err: unknown) => {
            fails('HELPER_UNAVAILABLE', /did not start again:\n(.|\n)*already serving it/)(err);
            assert.match((err as BangerError).hint!, /bangerd-root\.log, then start it by hand: sudo \/x\/bangerd-root --owner 0:0/);
            return true;
          },
        );
        assert.equal(clock.now() - start, HELPER_START_TIMEOUT_MS);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('stops waiting as soon as the started helper exits', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-helperwait-'));
      const clock = new FakeClock();
      try {
        await assert.rejects(
          waitForHelperSocket({ socketPath: path.join(dir, 'none.sock'), child: { exited: true }, logFile: path.join(dir, 'missing.log'), startCommand: 'sudo x', clock }),
          fails('HELPER_UNAVAILABLE', /did not start again$/),
        );
        assert.deepEqual(clock.sleeps, []);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
