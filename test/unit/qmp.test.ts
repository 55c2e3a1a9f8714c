import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { qmpCommand } from '../../src/vmm/qemu/qmp.ts';
import { fails } from '../fakes/expect-error.ts';

const GREETING = '{"QMP":{"version":{"qemu":{"major":9}},"capabilities":[]}}\n';

/**
 * A fake QEMU on a Unix socket: sends `greeting` on connect, then answers each line the client writes with the
 * next of `answers` (null: close the socket).
 */
async function fakeQmp(socketPath: string, greeting: string, answers: Array<string | null>): Promise<{ server: net.Server; received: string[] }> {
  const received: string[] = [];
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.setEncoding('utf8');
    socket.write(greeting);
    let buffer = '';
    let next = 0;
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        received.push(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
        const answer = answers[next++];
        if (answer === null) socket.destroy();
        else if (answer !== undefined) socket.write(answer);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return { server, received };
}

// The timeout turns a hang into a failure; every case below settles without waiting for QMP's own timer.
describe('qmpCommand', { timeout: 10_000 }, () => {
  let dir: string;
  let n = 0;
  const servers: net.Server[] = [];

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-qmp-'));
  });
  after(async () => {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function against(greeting: string, answers: Array<string | null>): Promise<{ socketPath: string; received: string[] }> {
    const socketPath = path.join(dir, `qmp-${n++}.sock`);
    const { server, received } = await fakeQmp(socketPath, greeting, answers);
    servers.push(server);
    return { socketPath, received };
  }

  it('negotiates capabilities, skips events and returns the answer', async () => {
    const { socketPath, received } = await against(GREETING, ['{"return":{}}\n', '{"event":"STOP","timestamp":{}}\n{"return":{"status":"paused"}}\n']);
    assert.deepEqual(await qmpCommand(socketPath, 'query-status'), { status: 'paused' });
    assert.deepEqual(received, ['{"execute":"qmp_capabilities"}', '{"execute":"query-status"}']);
  });

  it('counts quit answered by closing the socket as success', async () => {
    const { socketPath } = await against(GREETING, ['{"return":{}}\n', null]);
    assert.deepEqual(await qmpCommand(socketPath, 'quit'), {});
  });

  for (const [where, greeting, answers] of [
    ['as the greeting', 'this is not QMP\n', []],
    ['as the capabilities answer', GREETING, ['{"return":\n']],
    ['as the answer', GREETING, ['{"return":{}}\n', '<html>\n']],
  ] as const) {
    it(`rejects a line that is not JSON ${where} as a protocol error`, async () => {
      const { socketPath } = await against(greeting, [...answers]);
      await assert.rejects(qmpCommand(socketPath, 'query-status'), fails('VMM_FAILED', /QMP query-status on .*: got a line that is not JSON/, { hint: true }));
    });
  }

  for (const value of ['null', '42', '"str"', '[]', 'true']) {
    it(`rejects ${value} as a protocol error`, async () => {
      const { socketPath } = await against(GREETING, ['{"return":{}}\n', `${value}\n`]);
      await assert.rejects(qmpCommand(socketPath, 'query-status'), fails('VMM_FAILED', /expected a JSON object/, { hint: true }));
    });
  }

  it('rejects a line past the limit', async () => {
    const { socketPath } = await against(`{"QMP":"${'x'.repeat(1024 * 1024)}`, []);
    await assert.rejects(qmpCommand(socketPath, 'quit'), fails('VMM_FAILED', /longer than 1048576 bytes/, { hint: true }));
  });

  it('rejects when the socket closes before an answer', async () => {
    const { socketPath } = await against(GREETING, ['{"return":{}}\n', null]);
    await assert.rejects(qmpCommand(socketPath, 'query-status'), /closed before an answer/);
  });
});
