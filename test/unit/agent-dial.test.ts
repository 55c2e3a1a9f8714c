// dialAgent against stand-ins for the two host-side transports: QEMU's chardev socket (plain) and
// Firecracker's vsock multiplexer (docs/vsock.md: the host writes "CONNECT <port>\n" and reads "OK <port>\n").
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dialAgent } from '../../src/vmm/agent-dial.ts';

describe('dialAgent', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-dial-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** A Firecracker-like vsock socket: `answer` decides the reply to the CONNECT line, and the first agent bytes. */
  async function vsockServer(name: string, answer: (line: string, s: net.Socket) => void): Promise<string> {
    const sock = path.join(dir, name);
    const server = net.createServer((s) => {
      let got = '';
      s.on('data', (c: Buffer) => {
        got += c.toString('latin1');
        const nl = got.indexOf('\n');
        if (nl >= 0) answer(got.slice(0, nl), s);
      });
    });
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    after(() => server.close());
    return sock;
  }

  const firstBytes = (s: net.Socket): Promise<string> => new Promise((resolve) => {
    s.once('data', (c: Buffer) => resolve(c.toString()));
    s.resume();
  });

  it('sends CONNECT with the port, reads the OK line, and hands over what came after it', async () => {
    const sock = await vsockServer('ok.sock', (line, s) => {
      assert.equal(line, 'CONNECT 52');
      // The OK line and the agent's first bytes in one write, as a busy VMM may send them.
      s.write('OK 1073741824\nagent-bytes');
    });
    const s = await dialAgent({ kind: 'firecracker-vsock', path: sock, port: 52 });
    assert.equal(await firstBytes(s), 'agent-bytes');
    s.destroy();
  });

  it('fails when the VMM closes the connection (nothing listens on that port in the guest)', async () => {
    const sock = await vsockServer('closed.sock', (_line, s) => s.destroy());
    await assert.rejects(dialAgent({ kind: 'firecracker-vsock', path: sock, port: 52 }), /closed the connection/);
  });

  it('fails on an answer that is not "OK <port>"', async () => {
    const sock = await vsockServer('bad.sock', (_line, s) => s.write('NOPE\n'));
    await assert.rejects(dialAgent({ kind: 'firecracker-vsock', path: sock, port: 52 }), /expected "OK <port>"/);
  });

  it('connects to a virtio-serial socket as it is, and fails when nothing serves it yet', async () => {
    const sock = path.join(dir, 'serial.sock');
    const server = net.createServer((s) => s.end('hello'));
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      const s = await dialAgent({ kind: 'virtio-serial', path: sock });
      assert.equal(await firstBytes(s), 'hello');
    } finally {
      server.close();
    }
    await assert.rejects(dialAgent({ kind: 'virtio-serial', path: path.join(dir, 'missing.sock') }), /ENOENT/);
  });
});
