// The guests' firewall against the real kernel, nft and iptables, in network namespaces this test creates and
// deletes: a "router" namespace holds the bridge (as BANGER_NETNS would), two "guest" namespaces stand in for
// VMs on it, and a "server" namespace is elsewhere, reachable only through the router. Nothing outside them is
// touched. Needs root (the root tier: scripts/test-e2e.sh).
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { after, before, describe, it } from 'node:test';
import { HelperService } from '../../src/helper/helper-service.ts';
import { IptablesFirewall } from '../../src/helper/iptables-firewall.ts';
import { nftTableName } from '../../src/helper/nft-firewall.ts';
import type { GuestFirewall } from '../../src/helper/guest-firewall.ts';
import { NodeProcessRunner } from '../../src/system/process.ts';

const TAG = `bfw${process.pid}`;
const NS = { router: `${TAG}-r`, guest: `${TAG}-g`, other: `${TAG}-o`, server: `${TAG}-s` };
const BRIDGE = 'bgfw0';
const SUBNET = '172.31.77.0/24';
const GUEST = '172.31.77.5';
const OTHER = '172.31.77.6';
const SERVER = '10.77.0.2';

function sh(argv: string[], check = true): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 30_000 });
  if (check) assert.equal(r.status, 0, `${argv.join(' ')}: ${r.stderr}`);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const inNs = (ns: string, ...argv: string[]) => sh(['ip', 'netns', 'exec', ns, ...argv], false);
/** One ping, answered within a second or not at all. */
const reaches = (from: string, to: string): boolean => inNs(from, 'busybox', 'ping', '-c', '1', '-W', '1', to).code === 0;
const ruleset = (): string => inNs(NS.router, 'nft', 'list', 'ruleset').stdout;

/** A veth pair: `a` in namespace `nsA` with address `cidrA`, `b` in `nsB` (on `bridge` when given, else with `cidrB`). */
function link(a: string, nsA: string, cidrA: string, b: string, nsB: string, peer: { bridge?: string; cidr?: string }): void {
  sh(['ip', 'link', 'add', a, 'netns', nsA, 'type', 'veth', 'peer', 'name', b, 'netns', nsB]);
  sh(['ip', '-n', nsA, 'addr', 'add', cidrA, 'dev', a]);
  sh(['ip', '-n', nsA, 'link', 'set', a, 'up']);
  if (peer.bridge) sh(['ip', '-n', nsB, 'link', 'set', b, 'master', peer.bridge, 'up']);
  if (peer.cidr) sh(['ip', '-n', nsB, 'addr', 'add', peer.cidr, 'dev', b]);
  sh(['ip', '-n', nsB, 'link', 'set', b, 'up']);
}

describe('the guests\' firewall on the real kernel', { timeout: 120_000 }, () => {
  let helper: HelperService;
  const netnsDir = '/run/netns';

  before(() => {
    assert.equal(os.userInfo().uid, 0, 'the root tier needs root');
    for (const ns of Object.values(NS)) sh(['ip', 'netns', 'add', ns]);
    for (const ns of Object.values(NS)) sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    helper = new HelperService(new NodeProcessRunner(), {
      owner: { uid: 0, gid: 0 }, stateDir: '/nonexistent', cacheDir: '/nonexistent', runDir: '/nonexistent', netnsDir, procDir: '/proc',
      network: { bridge: BRIDGE, subnet: SUBNET, netns: NS.router },
    });
  });

  after(() => {
    for (const ns of Object.values(NS)) spawnSync('ip', ['netns', 'del', ns]);
  });

  it('sets up the bridge with the guests kept to it, even where the router forwards', async () => {
    await helper.ensureBridge({ bridge: BRIDGE, gatewayCidr: '172.31.77.1/24', netns: NS.router });
    link('eth0', NS.guest, `${GUEST}/24`, 'vg', NS.router, { bridge: BRIDGE });
    link('eth0', NS.other, `${OTHER}/24`, 'vo', NS.router, { bridge: BRIDGE });
    link('eth0', NS.server, `${SERVER}/24`, 'vs', NS.router, { cidr: '10.77.0.1/24' });
    for (const ns of [NS.guest, NS.other]) sh(['ip', '-n', ns, 'route', 'add', 'default', 'via', '172.31.77.1']);
    // The server knows no way back to the guests: only masquerading lets its answers return.
    inNs(NS.router, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1');
    assert.match(ruleset(), new RegExp(`table inet ${nftTableName(BRIDGE)}`));
    assert.ok(reaches(NS.guest, '172.31.77.1'), 'a guest reaches the host');
    assert.ok(reaches(NS.guest, OTHER), 'a guest reaches another guest');
    assert.ok(!reaches(NS.guest, SERVER), 'a guest without NAT does not get past the host');
    // With a way back, the drop is what stops it (not the missing route).
    sh(['ip', '-n', NS.server, 'route', 'add', SUBNET, 'via', '10.77.0.1']);
    assert.ok(!reaches(NS.guest, SERVER), 'forwarding from the bridge is dropped without NAT');
    assert.ok(!reaches(NS.server, GUEST), 'new connections into the bridge are dropped');
    sh(['ip', '-n', NS.server, 'route', 'del', SUBNET]);
  });

  it('NAT lets one guest out, masqueraded, and not the other; disabling takes it back and leaves nothing', async () => {
    const nat = { ip: GUEST, bridge: BRIDGE, netns: NS.router };
    await helper.natEnable(nat);
    await helper.natEnable(nat);
    assert.deepEqual(await helper.natList({ bridge: BRIDGE, netns: NS.router }), { ips: [GUEST] });
    assert.equal(inNs(NS.router, 'sysctl', '-n', 'net.ipv4.ip_forward').stdout.trim(), '1');
    assert.ok(reaches(NS.guest, SERVER), 'the NAT guest reaches the server');
    assert.ok(!reaches(NS.other, SERVER), 'the other guest still does not');
    // TCP, and the server sees the router's address, not the guest's.
    const server = spawn('ip', ['netns', 'exec', NS.server, '/usr/bin/python3', '-u', '-m', 'http.server', '--bind', SERVER, '8080'], { stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      let log = '';
      server.stderr!.on('data', (d: Buffer) => (log += d.toString()));
      let body = '';
      for (let i = 0; i < 50 && body === ''; i++) {
        const get = `fetch('http://${SERVER}:8080/', { signal: AbortSignal.timeout(2000) }).then(async (r) => process.stdout.write(await r.text()), () => {})`;
        body = inNs(NS.guest, process.execPath, '-e', get).stdout;
        if (body === '') await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.match(body, /Directory listing/);
      // The server's log arrives through this process's event loop, which the synchronous calls above held up.
      for (let i = 0; i < 50 && !log.includes('GET'); i++) await new Promise((resolve) => setTimeout(resolve, 100));
      assert.match(log, /^10\.77\.0\.1 - /m);
      assert.doesNotMatch(log, new RegExp(GUEST.replaceAll('.', '\\.')));
    } finally {
      stop(server);
    }
    sh(['ip', '-n', NS.server, 'route', 'add', SUBNET, 'via', '10.77.0.1']);
    assert.ok(!reaches(NS.server, GUEST), 'NAT opens nothing into the bridge');
    sh(['ip', '-n', NS.server, 'route', 'del', SUBNET]);

    await helper.natDisable(nat);
    await helper.natDisable(nat);
    assert.deepEqual(await helper.natList({ bridge: BRIDGE, netns: NS.router }), { ips: [] });
    assert.doesNotMatch(ruleset(), /172\.31\.77\.5/);
    assert.ok(!reaches(NS.guest, SERVER), 'without NAT again the guest stays in');
  });

  it('refuses an address outside its subnet without changing the rules', async () => {
    const before = ruleset();
    await assert.rejects(helper.natEnable({ ip: '10.77.0.9', bridge: BRIDGE, netns: NS.router }), /bangerd-root refused: guest address 10\.77\.0\.9/);
    assert.equal(ruleset(), before);
  });

  it('with iptables where nft is missing: the same isolation and NAT, tagged per guest, nothing left after disable', async () => {
    // Only one of the two may hold the bridge's rules: drop the nft table first.
    sh(['ip', 'netns', 'exec', NS.router, 'nft', 'delete', 'table', 'inet', nftTableName(BRIDGE)]);
    const fw: GuestFirewall = new IptablesFirewall({ runner: new NodeProcessRunner(), bridge: BRIDGE, netns: NS.router });
    await fw.isolate();
    await fw.isolate();
    assert.equal(inNs(NS.router, 'iptables', '-S', 'FORWARD').stdout.split('\n').filter((l) => l.includes('BANGER-FWD-')).length, 1);
    assert.ok(!reaches(NS.guest, SERVER), 'isolated without NAT');
    assert.ok(reaches(NS.guest, OTHER));
    await fw.enableNat(GUEST);
    await fw.enableNat(GUEST);
    assert.deepEqual(await fw.natAddresses(), [GUEST]);
    assert.ok(reaches(NS.guest, SERVER), 'the NAT guest reaches the server');
    assert.ok(!reaches(NS.other, SERVER), 'the other guest does not');
    await fw.disableNat(GUEST);
    await fw.disableNat(GUEST);
    assert.deepEqual(await fw.natAddresses(), []);
    for (const table of ['filter', 'nat']) assert.doesNotMatch(inNs(NS.router, 'iptables', '-t', table, '-S').stdout, /banger-nat/);
    assert.ok(!reaches(NS.guest, SERVER));
  });
});

function stop(child: ChildProcess): void {
  if (child.exitCode === null) child.kill('SIGKILL');
}
