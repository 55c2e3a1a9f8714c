// The .vm DNS server on a free loopback port, asked with dns-packet over node's sockets and with the real dig.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { promisify } from 'node:util';
import { after, before, beforeEach, describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { VmDnsServer, VM_DNS_TTL_SEC } from '../../src/daemon/services/vm-dns.ts';
import { fails } from '../fakes/expect-error.ts';

const run = promisify(execFile);
const HOST = '127.0.0.1';

/** Running VMs by name, as the daemon's lookup would see them; tests change it between queries. */
const vms = new Map<string, string>();
const looked: string[] = [];
const logs: string[] = [];
let failLookup = false;
let server: VmDnsServer;

const query = (name: string, type: dnsPacket.RecordType = 'A', id = 4242, extra: Partial<dnsPacket.Packet> = {}): Buffer =>
  dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }], ...extra });

const rcodeOf = (p: dnsPacket.DecodedPacket): number => (p.flags ?? 0) & 0xf;

/** Sends each datagram in order from one socket and returns the first reply. */
async function udpExchange(port: number, ...messages: Buffer[]): Promise<dnsPacket.DecodedPacket> {
  const socket = dgram.createSocket('udp4');
  try {
    const reply = new Promise<Buffer>((resolve, reject) => {
      socket.once('message', resolve);
      socket.once('error', reject);
    });
    for (const m of messages) await new Promise<void>((resolve, reject) => socket.send(m, port, HOST, (err) => (err ? reject(err) : resolve())));
    return dnsPacket.decode(await reply);
  } finally {
    socket.close();
  }
}

/** One TCP connection: sends the framed messages, and collects what comes back until the server closes it or `want` replies came. */
async function tcpExchange(port: number, messages: Buffer[], want: number): Promise<{ replies: dnsPacket.DecodedPacket[]; closedByServer: boolean }> {
  const socket = net.connect({ host: HOST, port });
  const replies: dnsPacket.DecodedPacket[] = [];
  let pending = Buffer.alloc(0);
  return new Promise((resolve, reject) => {
    socket.on('error', reject);
    socket.on('connect', () => {
      for (const m of messages) {
        const framed = Buffer.alloc(2 + m.length);
        framed.writeUInt16BE(m.length, 0);
        m.copy(framed, 2);
        socket.write(framed);
      }
    });
    socket.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        replies.push(dnsPacket.decode(pending.subarray(2, 2 + pending.readUInt16BE(0))));
        pending = pending.subarray(2 + pending.readUInt16BE(0));
      }
      if (replies.length >= want) {
        socket.destroy();
        resolve({ replies, closedByServer: false });
      }
    });
    socket.on('end', () => resolve({ replies, closedByServer: true }));
  });
}

/** dig against the server; dig's own timeout only matters when the server fails to answer. */
async function dig(...args: string[]): Promise<string> {
  const { stdout } = await run('dig', [`@${HOST}`, '-p', String(server.port), '+time=3', '+tries=1', ...args]);
  return stdout;
}

const statusOf = (digOutput: string): string | undefined => /status: ([A-Z]+)/.exec(digOutput)?.[1];

describe('VmDnsServer', () => {
  before(async () => {
    server = new VmDnsServer({
      host: HOST,
      port: 0,
      lookup: (name) => {
        looked.push(name);
        if (failLookup) throw new Error('store is gone');
        return vms.get(name);
      },
      logger: (m) => logs.push(m),
    });
    await server.start();
  });
  after(async () => {
    await server.close();
  });
  beforeEach(() => {
    vms.clear();
    vms.set('web', '172.30.0.2');
    looked.length = 0;
    logs.length = 0;
    failLookup = false;
  });

  it('reports the port it bound when asked for any', () => {
    assert.ok(server.port > 0 && server.port < 65_536, String(server.port));
  });

  describe('asked with dig', () => {
    it('answers NAME.vm with the VM address over UDP and TCP', async () => {
      assert.equal((await dig('web.vm', 'A', '+short')).trim(), '172.30.0.2');
      assert.equal((await dig('web.vm', 'A', '+short', '+tcp')).trim(), '172.30.0.2');
    });

    it('says NXDOMAIN for a name in .vm that no running VM has, with the SOA', async () => {
      const out = await dig('ghost.vm', 'A');
      assert.equal(statusOf(out), 'NXDOMAIN');
      assert.match(out, /AUTHORITY SECTION:\nvm\.\s+5\s+IN\s+SOA\s+vm\. hostmaster\.vm\./);
      assert.equal(statusOf(await dig('ghost.vm', 'A', '+tcp')), 'NXDOMAIN');
    });

    it('refuses names outside .vm, without asking the lookup', async () => {
      assert.equal(statusOf(await dig('example.com', 'A')), 'REFUSED');
      assert.equal(statusOf(await dig('web.vm.example.com', 'A', '+tcp')), 'REFUSED');
      assert.equal(statusOf(await dig('notvm', 'A')), 'REFUSED');
      assert.deepEqual(looked, []);
    });

    it('sees a VM that started or stopped since the last query', async () => {
      assert.equal((await dig('api.vm', '+short')).trim(), '');
      vms.set('api', '172.30.0.9');
      assert.equal((await dig('api.vm', '+short')).trim(), '172.30.0.9');
      vms.set('api', '172.30.0.10');
      assert.equal((await dig('api.vm', '+short', '+tcp')).trim(), '172.30.0.10');
      vms.delete('api');
      assert.equal(statusOf(await dig('api.vm')), 'NXDOMAIN');
    });
  });

  describe('answers', () => {
    it('are authoritative A records with a 5 s TTL that echo the id and the question', async () => {
      const reply = await udpExchange(server.port, query('web.vm', 'A', 0xbeef));
      assert.equal(reply.id, 0xbeef);
      assert.equal(reply.type, 'response');
      assert.ok(reply.flag_aa, 'AA');
      assert.ok(reply.flag_rd, 'RD echoed');
      assert.ok(!reply.flag_ra, 'no recursion offered');
      assert.equal(rcodeOf(reply), 0);
      assert.deepEqual(reply.questions, [{ name: 'web.vm', type: 'A', class: 'IN' }]);
      assert.deepEqual(reply.answers, [{ name: 'web.vm', type: 'A', class: 'IN', ttl: VM_DNS_TTL_SEC, flush: false, data: '172.30.0.2' }]);
      assert.equal(VM_DNS_TTL_SEC, 5);
    });

    it('ignore case, and ask the lookup in lowercase without .vm', async () => {
      const reply = await udpExchange(server.port, query('WeB.Vm.', 'A'));
      assert.equal(reply.answers?.[0]?.type, 'A');
      assert.equal((reply.answers![0] as dnsPacket.StringAnswer).data, '172.30.0.2');
      // The owner name keeps the case it was asked in (resolvers that randomize case check it).
      assert.equal(reply.answers![0]!.name, 'WeB.Vm');
      assert.deepEqual(looked, ['web']);
    });

    it('are NODATA with the SOA for another type of a name that exists', async () => {
      for (const type of ['AAAA', 'MX', 'TXT'] as const) {
        const reply = await udpExchange(server.port, query('web.vm', type));
        assert.equal(rcodeOf(reply), 0, type);
        assert.ok(reply.flag_aa);
        assert.deepEqual(reply.answers, []);
        assert.deepEqual(reply.authorities?.map((a) => [a.name, a.type]), [['vm', 'SOA']]);
        assert.equal((reply.authorities![0] as dnsPacket.SoaAnswer).data.minimum, 5);
      }
    });

    it('are NXDOMAIN with the SOA for a name deeper in the zone', async () => {
      const reply = await udpExchange(server.port, query('x.web.vm', 'A'));
      assert.equal(rcodeOf(reply), 3);
      assert.deepEqual(reply.authorities?.map((a) => a.type), ['SOA']);
    });

    it('give the zone apex its SOA and NS, and NODATA for other types', async () => {
      const soa = await udpExchange(server.port, query('vm', 'SOA'));
      assert.deepEqual(soa.answers?.map((a) => [a.name, a.type]), [['vm', 'SOA']]);
      assert.ok(soa.flag_aa);
      const ns = await udpExchange(server.port, query('vm.', 'NS'));
      assert.deepEqual(ns.answers?.map((a) => [a.name, a.type, (a as dnsPacket.StringAnswer).data]), [['vm', 'NS', 'vm']]);
      const a = await udpExchange(server.port, query('VM', 'A'));
      assert.equal(rcodeOf(a), 0);
      assert.deepEqual(a.answers, []);
      assert.deepEqual(a.authorities?.map((r) => r.type), ['SOA']);
      assert.deepEqual(looked, []);
    });

    it('are REFUSED outside the zone and for classes other than IN', async () => {
      const out = await udpExchange(server.port, query('web.vmx', 'A', 7));
      assert.equal(rcodeOf(out), 5);
      assert.equal(out.id, 7);
      assert.ok(!out.flag_aa);
      assert.deepEqual(out.questions?.map((q) => q.name), ['web.vmx']);
      const chaos = await udpExchange(server.port, dnsPacket.encode({ type: 'query', id: 8, questions: [{ type: 'TXT', name: 'web.vm', class: 'CH' }] }));
      assert.equal(rcodeOf(chaos), 5);
      assert.deepEqual(looked, []);
    });

    it('carry an EDNS OPT record only when the query had one', async () => {
      const plain = await udpExchange(server.port, query('web.vm'));
      assert.deepEqual(plain.additionals, []);
      const opt = { type: 'OPT' as const, name: '.', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] };
      const edns = await udpExchange(server.port, query('web.vm', 'A', 1, { additionals: [opt] }));
      assert.deepEqual(edns.additionals?.map((a) => a.type), ['OPT']);
    });

    it('are SERVFAIL, logged, when the lookup throws', async () => {
      failLookup = true;
      const reply = await udpExchange(server.port, query('web.vm'));
      assert.equal(rcodeOf(reply), 2);
      assert.match(logs.join('\n'), /looking up web\.vm failed: store is gone/);
    });

    it('are SERVFAIL, logged, when the lookup gives something that is not an IPv4 address', async () => {
      vms.set('odd', 'fd00::2');
      const reply = await udpExchange(server.port, query('odd.vm'));
      assert.equal(rcodeOf(reply), 2);
      assert.deepEqual(reply.answers, []);
      assert.match(logs.join('\n'), /the address of odd\.vm is not IPv4: "fd00::2"/);
    });

    it('are FORMERR for a query with two questions, and NOTIMP for an opcode other than QUERY', async () => {
      const two = dnsPacket.encode({ type: 'query', id: 9, questions: [{ type: 'A', name: 'web.vm' }, { type: 'A', name: 'api.vm' }] });
      const formerr = await udpExchange(server.port, two);
      assert.equal(rcodeOf(formerr), 1);
      assert.equal(formerr.id, 9);
      // Opcode 2 (STATUS) in bits 11-14.
      const status = await udpExchange(server.port, dnsPacket.encode({ type: 'query', id: 10, flags: 2 << 11, questions: [{ type: 'A', name: 'web.vm' }] }));
      assert.equal(rcodeOf(status), 4);
    });
  });

  describe('bad packets', () => {
    it('drops garbage over UDP and still answers the next query', async () => {
      // From one socket, in order: had the garbage or the reply-shaped packet been answered, that answer would come first.
      const garbage = Buffer.from('definitely not DNS');
      const truncated = query('web.vm').subarray(0, 20);
      const aReply = dnsPacket.encode({ type: 'response', id: 1, questions: [{ type: 'A', name: 'web.vm' }] });
      const reply = await udpExchange(server.port, garbage, truncated, Buffer.alloc(0), aReply, query('web.vm', 'A', 0x1234));
      assert.equal(reply.id, 0x1234);
      assert.equal((reply.answers?.[0] as dnsPacket.StringAnswer | undefined)?.data, '172.30.0.2');
      assert.equal((await dig('web.vm', '+short')).trim(), '172.30.0.2');
    });

    it('closes a TCP connection that sends garbage, and answers on the next one', async () => {
      const bad = await tcpExchange(server.port, [Buffer.from('garbage!')], 1);
      assert.deepEqual(bad, { replies: [], closedByServer: true });
      const good = await tcpExchange(server.port, [query('web.vm', 'A', 1), query('ghost.vm', 'A', 2)], 2);
      assert.deepEqual(good.replies.map((r) => [r.id, rcodeOf(r)]), [[1, 0], [2, 3]]);
    });

    it('answers a TCP query whose length and body arrive in pieces', async () => {
      const message = query('web.vm', 'A', 77);
      const socket = net.connect({ host: HOST, port: server.port });
      const reply = new Promise<Buffer>((resolve, reject) => {
        socket.once('data', resolve);
        socket.once('error', reject);
      });
      await new Promise<void>((resolve) => socket.once('connect', resolve));
      const framed = Buffer.concat([Buffer.from([message.length >> 8, message.length & 0xff]), message]);
      // A UDP round trip between the pieces: the server reads the piece sent before it in the same turn of its
      // event loop at the latest, so each piece arrives on its own.
      for (const [from, to] of [[0, 1], [1, 9], [9, framed.length]] as const) {
        socket.write(framed.subarray(from, to));
        await udpExchange(server.port, query('web.vm'));
      }
      const data = await reply;
      socket.destroy();
      assert.equal(dnsPacket.decode(data.subarray(2)).id, 77);
    });
  });
});

describe('VmDnsServer start and close', () => {
  it('refuses a port that is taken, saying how to pick another or turn it off', async () => {
    const holder = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => holder.bind(0, HOST, resolve));
    const taken = holder.address().port;
    try {
      const s = new VmDnsServer({ host: HOST, port: taken, lookup: () => undefined });
      await assert.rejects(s.start(), (err: unknown) => {
        fails('NETWORK_FAILED', new RegExp(`127\\.0\\.0\\.1:${taken}: the port is in use`), { hint: true })(err);
        assert.match((err as Error & { hint: string }).hint, /\[dns\] port in config\.toml \(0 turns the \.vm DNS server off\)/);
        return true;
      });
      assert.throws(() => s.port, /not started/);
    } finally {
      holder.close();
    }
  });

  it('serves on the port it was given, and frees it on close', async () => {
    const first = new VmDnsServer({ host: HOST, port: 0, lookup: () => '172.30.0.3' });
    await first.start();
    const port = first.port;
    await first.close();
    assert.throws(() => first.port, /not started/);
    const second = new VmDnsServer({ host: HOST, port, lookup: () => '172.30.0.3' });
    await second.start();
    try {
      assert.equal(second.port, port);
      const reply = await udpExchange(port, query('any.vm'));
      assert.equal((reply.answers?.[0] as dnsPacket.StringAnswer | undefined)?.data, '172.30.0.3');
      const tcp = await tcpExchange(port, [query('any.vm', 'A', 3)], 1);
      assert.equal(tcp.replies[0]?.id, 3);
    } finally {
      await second.close();
    }
  });

  it('takes only an IPv4 host and a port from 0 to 65535', () => {
    assert.throws(() => new VmDnsServer({ host: 'localhost', port: 0, lookup: () => undefined }), /IPv4/);
    assert.throws(() => new VmDnsServer({ host: HOST, port: 70_000, lookup: () => undefined }), /bad port/);
  });
});
