import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connectHostFor, endpointFor, mergeListeners, parseAgentSockets, probeListener, type AgentSocket } from '../../src/daemon/services/guest-ports.ts';

const sock = (o: Partial<AgentSocket>): AgentSocket => ({ proto: 'tcp', family: 4, address: '0.0.0.0', port: 80, pid: 10, process: 'busybox', cmdline: ['busybox', 'httpd'], ...o });

describe('vm ports rows', () => {
  it('shows a dual-stack listener once with both addresses, keeps UDP, and sorts by proto and port', () => {
    const rows = mergeListeners('web', [
      sock({ port: 8080 }), sock({ port: 8080, family: 6, address: '::' }), sock({ port: 22, pid: 5, process: 'sshd', cmdline: ['sshd:', '/usr/sbin/sshd'] }),
      sock({ proto: 'udp', port: 5353, process: 'avahi', cmdline: null }), sock({ port: 0 }),
    ], [{ hostPort: 9000, vmId: 'x', guestPort: 8080, createdAt: 't' }]);
    assert.deepEqual(rows.map((r) => [r.proto, r.port, r.addresses, r.endpoint, r.forwardedFrom]), [
      ['tcp', 22, ['0.0.0.0'], 'web.vm:22', []],
      ['tcp', 8080, ['0.0.0.0', '::'], 'web.vm:8080', [9000]],
      ['udp', 5353, ['0.0.0.0'], 'web.vm:5353', []],
    ]);
    assert.equal(rows[0]!.command, 'sshd: /usr/sbin/sshd');
    assert.equal(rows[2]!.command, null);
  });

  it('drops malformed sockets from the agent rather than showing them', () => {
    const parsed = parseAgentSockets({ sockets: [sock({}), { proto: 'sctp', family: 4, address: 'x', port: 1 }, { proto: 'tcp', family: 4, address: 'a', port: 70000 }, null, 'x'] });
    assert.equal(parsed.length, 1);
    assert.deepEqual(parseAgentSockets({ sockets: 'nope' }), []);
    assert.deepEqual(parseAgentSockets(null), []);
  });

  it('connects to loopback for wildcard and loopback listeners, else to the address listened on', () => {
    assert.equal(connectHostFor(['0.0.0.0', '::']), '127.0.0.1');
    assert.equal(connectHostFor(['::1']), '::1');
    assert.equal(connectHostFor(['172.30.0.5']), '172.30.0.5');
    assert.equal(endpointFor('web', 'https', 443), 'https://web.vm:443');
    assert.equal(endpointFor('web', 'tcp', 22), 'web.vm:22');
  });
});

describe('probeListener', () => {
  let dir: string;
  const servers: net.Server[] = [];
  const ports: Record<string, number> = {};
  const listen = async (name: string, server: net.Server): Promise<void> => {
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ports[name] = (server.address() as net.AddressInfo).port;
  };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-probe-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=web.vm', '-days', '1',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
    await listen('http', http.createServer((_req, res) => res.end('hi')));
    // A TLS server that answers plain HTTP with an HTTP error page: must show as https, not http.
    await listen('https', https.createServer({ key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) }, (_req, res) => res.end('secure')));
    await listen('banner', net.createServer((s) => s.end('SSH-2.0-OpenSSH_9.2\r\n')));
    await listen('closer', net.createServer((s) => s.destroy()));
  });
  after(() => {
    for (const s of servers) s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const open = (port: number) => () => net.connect(port, '127.0.0.1');

  it('tells HTTPS, HTTP and other TCP apart', async () => {
    assert.equal(await probeListener(open(ports.https!), 'web.vm'), 'https');
    assert.equal(await probeListener(open(ports.http!), 'web.vm'), 'http');
    assert.equal(await probeListener(open(ports.banner!), 'web.vm'), 'tcp');
    assert.equal(await probeListener(open(ports.closer!), 'web.vm'), 'tcp');
  });
});
