// End to end: --nat on a real guest. The bridge lives in a network namespace this test creates (BANGER_NETNS),
// and "elsewhere" is a second namespace it creates, linked to the first by a veth pair, where an HTTP server
// listens. The server has no route back to the guests, so only masquerading gets its answers to them. All
// traffic stays inside these namespaces; both are deleted afterwards, with the fresh BANGER_HOME.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { e2eBanger, type Result } from './e2e-banger.ts';

const NETNS = `banger-nat-${process.pid}`;
const SERVER_NS = `banger-natsrv-${process.pid}`;
const SERVER = '10.77.0.2';
const URL = `http://${SERVER}:8080/`;
const TABLE = ['inet', 'banger_banger0'];
const { home: HOME, banger, ok, teardown } = e2eBanger('banger-e2e-nat-', NETNS);

function sh(argv: string[]): void {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, `${argv.join(' ')}: ${r.stderr}`);
}

function vms(): Array<{ name: string; ip: string; nat: boolean; state: string }> {
  return JSON.parse(ok(['vm', 'list', '--json']).stdout) as Array<{ name: string; ip: string; nat: boolean; state: string }>;
}

/** The guest addresses in banger's NAT set, read with nft in the bridge's namespace. */
function natSet(): string[] {
  const r = spawnSync('ip', ['netns', 'exec', NETNS, 'nft', '-j', 'list', 'set', ...TABLE, 'nat_guests'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as { nftables: Array<{ set?: { elem?: string[] } }> };
  return doc.nftables.find((o) => o.set)?.set?.elem ?? [];
}

const fetchInGuest = (vm: string): Result => banger(['vm', 'ssh', vm, '--', 'curl', '-sS', '-m', '5', URL]);

describe('--nat on a real guest', { timeout: 30 * 60_000 }, () => {
  let server: ChildProcess | null = null;

  before(() => {
    assert.equal(os.userInfo().uid, 0, 'the e2e tests need root (network namespaces, taps, debootstrap)');
    sh(['ip', 'netns', 'add', NETNS]);
    sh(['ip', 'netns', 'add', SERVER_NS]);
    sh(['ip', 'link', 'add', 'vnat0', 'netns', NETNS, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', SERVER_NS]);
    sh(['ip', '-n', NETNS, 'addr', 'add', '10.77.0.1/24', 'dev', 'vnat0']);
    sh(['ip', '-n', SERVER_NS, 'addr', 'add', `${SERVER}/24`, 'dev', 'eth0']);
    for (const [ns, dev] of [[NETNS, 'vnat0'], [SERVER_NS, 'eth0'], [SERVER_NS, 'lo']] as const) sh(['ip', '-n', ns, 'link', 'set', dev, 'up']);
    server = spawn('ip', ['netns', 'exec', SERVER_NS, '/usr/bin/python3', '-m', 'http.server', '--bind', SERVER, '8080'], { cwd: HOME, stdio: 'ignore' });
  });

  after(() => {
    teardown();
    if (server?.exitCode === null) server.kill('SIGKILL');
    spawnSync('ip', ['netns', 'del', SERVER_NS]);
    spawnSync('ip', ['netns', 'del', NETNS]);
  });

  test('a --nat guest reaches a server beyond the host, across a restart; delete leaves no NAT', (t) => {
    t.after(() => {
      if (vms().some((vm) => vm.name === 'e2e-nat')) banger(['vm', 'delete', 'e2e-nat']);
    });
    const created = ok(['vm', 'create', '--name', 'e2e-nat', '--nat']);
    assert.match(created.stderr, /image debian-bookworm, NAT,/);
    const [vm] = vms();
    assert.equal(vm?.nat, true);
    assert.match(ok(['vm', 'show', 'e2e-nat']).stdout, /^nat: +on/m);
    assert.deepEqual(natSet(), [vm!.ip]);
    const r = fetchInGuest('e2e-nat');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Directory listing/);

    ok(['vm', 'stop', 'e2e-nat']);
    assert.deepEqual(natSet(), [], 'no NAT while stopped');
    ok(['vm', 'start', 'e2e-nat']);
    assert.deepEqual(natSet(), [vm!.ip], 'NAT is a setting of the VM, back after a restart');
    assert.equal(fetchInGuest('e2e-nat').code, 0);

    ok(['vm', 'delete', 'e2e-nat']);
    assert.deepEqual(natSet(), [], 'no NAT after delete');
    const table = spawnSync('ip', ['netns', 'exec', NETNS, 'nft', 'list', 'table', ...TABLE], { encoding: 'utf8' }).stdout;
    assert.doesNotMatch(table, new RegExp(vm!.ip.replaceAll('.', '\\.')));
  });

  test('a guest without --nat reaches the host but not the server', () => {
    const r = banger(['vm', 'run', '--rm', '--', 'bash', '-c', `curl -sS -m 5 -o /dev/null http://172.30.0.1:1/ ; echo host=$?; curl -sS -m 5 ${URL}`]);
    // curl exit 7 is "connection refused": the host answered. 28 is a timeout: nothing came back from the server.
    assert.match(r.stdout, /^host=7$/m, r.stderr);
    assert.notEqual(r.code, 0, `a plain guest fetched ${URL}:\n${r.stdout}`);
    assert.doesNotMatch(r.stdout, /Directory listing/);
    assert.deepEqual(natSet(), []);
  });

  test('NAT left by a daemon that was killed is removed when bangerd starts again', () => {
    sh(['ip', 'netns', 'exec', NETNS, 'nft', 'add', 'element', ...TABLE, 'nat_guests', '{ 172.30.0.99 }']);
    assert.deepEqual(natSet(), ['172.30.0.99']);
    const pid = Number(fs.readFileSync(path.join(HOME, 'run', 'bangerd.pid'), 'utf8'));
    process.kill(pid, 'SIGKILL');
    ok(['vm', 'list']);
    assert.deepEqual(natSet(), []);
  });
});
