// End to end for the guest agent and what rides on it: health, ports, stats, exec without ssh, forwards, the
// `.vm` DNS server and `ssh NAME.vm`. The VM lives in a network namespace this test creates and deletes; the
// DNS server and forwards listen on 127.0.0.1 only.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BANGER, e2eBanger } from './e2e-banger.ts';
import { freePort } from '../fakes/free-port.ts';

const NETNS = `banger-e2e-agent-${process.pid}`;
const VM = 'e2e-agent';
const { home: HOME, env: ENV, banger, ok, teardown } = e2eBanger('banger-e2e-agent-', NETNS);

function json<T>(args: string[]): T {
  return JSON.parse(ok([...args, '--json']).stdout) as T;
}


function httpGet(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/', timeout: 30_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

function exec(args: string[], input?: Buffer): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(BANGER, ['vm', 'exec', ...args], { env: ENV, encoding: 'utf8', timeout: 5 * 60_000, ...(input ? { input } : {}) });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dnsPort = 0;

describe('the guest agent on a real guest', { timeout: 30 * 60_000 }, () => {
  before(async () => {
    assert.equal(os.userInfo().uid, 0, 'the e2e tests need root (network namespace, taps)');
    const add = spawnSync('ip', ['netns', 'add', NETNS], { encoding: 'utf8' });
    assert.equal(add.status, 0, `ip netns add ${NETNS}: ${add.stderr}`);
    // Its own DNS port: other e2e files run their daemons at the same time.
    dnsPort = await freePort();
    fs.mkdirSync(path.join(HOME, 'config'), { recursive: true });
    fs.writeFileSync(path.join(HOME, 'config', 'config.toml'), `[dns]\nport = ${dnsPort}\n`);
  });

  after(() => {
    teardown();
    spawnSync('ip', ['netns', 'del', NETNS]);
  });

  test('vm create waits for the agent, which answers health with the version this banger ships', () => {
    const created = ok(['vm', 'create', '--name', VM]);
    assert.match(created.stderr, /waiting for the guest agent/);
    const health = json<{ systemState: string; agentVersion: string; agentOutdated: boolean; uptimeSec: number }>(['vm', 'health', VM]);
    // sshd and the agent start with the first units, so vm create can return while systemd is still before
    // basic.target (initializing) or after it (starting); never in a failed or stopping state.
    assert.match(health.systemState, /^(running|degraded|starting|initializing)$/);
    assert.equal(health.agentOutdated, false);
    assert.ok(health.uptimeSec > 0);
    assert.match(ok(['vm', 'show', VM]).stdout, new RegExp(`agent: +${health.agentVersion.replace(/\./g, '\\.')}`));
  });

  test('vm exec through the agent and through ssh give the same output and exit status', () => {
    const script = ['sh', '-c', 'echo out; echo err >&2; pwd; exit 4'];
    const viaAgent = exec(['--via', 'agent', VM, '--', ...script]);
    const viaSsh = exec(['--via', 'ssh', VM, '--', ...script]);
    assert.equal(viaAgent.code, 4, viaAgent.stderr);
    assert.deepEqual([viaAgent.code, viaAgent.stdout, viaAgent.stderr], [viaSsh.code, viaSsh.stdout, viaSsh.stderr]);
    assert.equal(viaAgent.stdout, 'out\n/root\n');
    // stdin reaches the command: the host's static busybox goes in this way, for the HTTP server below.
    const busybox = fs.readFileSync('/bin/busybox');
    const put = exec([VM, '--', 'sh', '-c', 'cat > /usr/local/bin/busybox && chmod 755 /usr/local/bin/busybox && wc -c < /usr/local/bin/busybox'], busybox);
    assert.equal(put.code, 0, put.stderr);
    assert.equal(Number(put.stdout.trim()), busybox.length);
  });

  test('vm ports shows an HTTP server as http://NAME.vm:PORT and sshd as tcp', () => {
    const started = exec([VM, '--', 'sh', '-c', 'mkdir -p /srv/www && echo hello-from-guest > /srv/www/index.html && busybox httpd -p 8080 -h /srv/www']);
    assert.equal(started.code, 0, started.stderr);
    const { ports } = json<{ ports: Array<{ proto: string; port: number; endpoint: string; process: string | null; kind: string }> }>(['vm', 'ports', VM]);
    const web = ports.find((p) => p.port === 8080);
    assert.ok(web, JSON.stringify(ports));
    assert.equal(web.endpoint, `http://${VM}.vm:8080`);
    assert.equal(web.process, 'busybox');
    const ssh = ports.find((p) => p.port === 22 && p.proto === 'tcp');
    assert.ok(ssh, JSON.stringify(ports));
    assert.equal(ssh.endpoint, `${VM}.vm:22`);
    assert.equal(ports.filter((p) => p.port === 22 && p.proto === 'tcp').length, 1, 'sshd on 0.0.0.0 and :: shows once');
    assert.match(ok(['vm', 'ports', VM]).stdout, /http:\/\/e2e-agent\.vm:8080/);
  });

  test('vm stats: memory total is the VM\'s RAM within 5%, and the VMM\'s host memory is known', () => {
    const vm = json<{ memoryMib: number }>(['vm', 'show', VM]);
    const stats = json<{ memTotalBytes: number; memUsedBytes: number; cpus: number; disks: Array<{ mount: string; totalBytes: number }>; vmmRssBytes: number | null; uptimeSec: number }>(['vm', 'stats', VM]);
    const ram = vm.memoryMib * 1024 * 1024;
    assert.ok(Math.abs(stats.memTotalBytes - ram) / ram <= 0.05, `memTotal ${stats.memTotalBytes} vs RAM ${ram}`);
    assert.ok(stats.memUsedBytes > 0 && stats.memUsedBytes < stats.memTotalBytes);
    assert.deepEqual(stats.disks.map((d) => d.mount).sort(), ['/', '/root']);
    assert.ok(stats.vmmRssBytes !== null && stats.vmmRssBytes > 0);
  });

  test('dig gets the VM\'s address for NAME.vm and NXDOMAIN for another name', () => {
    const vm = json<{ ip: string }>(['vm', 'show', VM]);
    const a = spawnSync('dig', ['@127.0.0.1', '-p', String(dnsPort), `${VM}.vm`, 'A', '+short', '+time=5', '+tries=1'], { encoding: 'utf8' });
    assert.equal(a.stdout.trim(), vm.ip, a.stderr);
    const none = spawnSync('dig', ['@127.0.0.1', '-p', String(dnsPort), 'no-such-vm.vm', 'A', '+time=5', '+tries=1'], { encoding: 'utf8' });
    assert.match(none.stdout, /status: NXDOMAIN/);
  });

  test('after ssh-config --install, plain `ssh NAME.vm true` works, also with the guest in a namespace', (t) => {
    const tmpHome = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-e2e-sshhome-'));
    t.after(() => fs.rmSync(tmpHome, { recursive: true, force: true }));
    const install = spawnSync(BANGER, ['ssh-config', '--install'], { env: { ...ENV, HOME: tmpHome }, encoding: 'utf8' });
    assert.equal(install.status, 0, install.stderr);
    // ssh finds ~/.ssh/config through the password database, not $HOME: in a private mount namespace, the temp home
    // is mounted over root's, so this is the plain command a user types.
    const ssh = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$1" /root && exec ssh -o BatchMode=yes "$2" true', 'sh', tmpHome, `${VM}.vm`], {
      env: { ...ENV, HOME: '/root' }, encoding: 'utf8', timeout: 120_000,
    });
    assert.equal(ssh.status, 0, `ssh ${VM}.vm true: ${ssh.stderr}`);
  });

  test('vm forward serves the guest\'s HTTP server on 127.0.0.1, a dead port is refused, and --remove stops it', async () => {
    const forward = json<{ hostPort: number; guestPort: number }>(['vm', 'forward', VM, '8080']);
    assert.equal(forward.guestPort, 8080);
    assert.equal((await httpGet(forward.hostPort)).trim(), 'hello-from-guest');
    const { ports } = json<{ ports: Array<{ port: number; forwardedFrom: number[] }> }>(['vm', 'ports', VM]);
    assert.deepEqual(ports.find((p) => p.port === 8080)?.forwardedFrom, [forward.hostPort]);

    const dead = json<{ hostPort: number }>(['vm', 'forward', VM, '9']);
    await assert.rejects(httpGet(dead.hostPort), /ECONNRESET|socket hang up/);
    assert.equal((await httpGet(forward.hostPort)).trim(), 'hello-from-guest', 'the forward still works after a refused one');

    ok(['vm', 'forward', VM, '--remove', String(forward.hostPort)]);
    await assert.rejects(httpGet(forward.hostPort), /ECONNREFUSED/);
  });

  test('after a daemon restart the agent answers again on its serial port, forwards are served again and names resolve', async () => {
    const f = json<{ hostPort: number }>(['vm', 'forward', VM, '8080']);
    ok(['daemon', 'stop']);
    // The next command starts bangerd again; it reconnects to the agent the old one had.
    const health = json<{ systemState: string }>(['vm', 'health', VM]);
    // sshd and the agent start with the first units, so vm create can return while systemd is still before
    // basic.target (initializing) or after it (starting); never in a failed or stopping state.
    assert.match(health.systemState, /^(running|degraded|starting|initializing)$/);
    assert.equal((await httpGet(f.hostPort)).trim(), 'hello-from-guest');
    const vm = json<{ ip: string }>(['vm', 'show', VM]);
    const a = spawnSync('dig', ['@127.0.0.1', '-p', String(dnsPort), `${VM}.vm`, 'A', '+short', '+time=5', '+tries=1'], { encoding: 'utf8' });
    assert.equal(a.stdout.trim(), vm.ip);
    assert.equal(exec(['--via', 'agent', VM, '--', 'true']).code, 0);
    ok(['vm', 'forward', VM, '--remove', String(f.hostPort)]);
  });

  test('vm stop takes the forwards with it; vm delete leaves nothing', async () => {
    const f = json<{ hostPort: number }>(['vm', 'forward', VM, '8080']);
    ok(['vm', 'stop', VM]);
    await assert.rejects(httpGet(f.hostPort), /ECONNREFUSED/, 'the forward stopped with the VM');
    const r = banger(['vm', 'ports', VM]);
    assert.equal(r.code, 5, `vm ports on a stopped VM is VM_BAD_STATE: ${r.stderr}`);
    ok(['vm', 'delete', VM]);
  });
});
