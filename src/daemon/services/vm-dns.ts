// The `.vm` zone: NAME.vm is the address of the running VM called NAME. bangerd serves it on loopback, UDP and
// TCP on one port, and systemd-resolved (or the user's own resolver) sends it the queries for `vm` only. Answers
// are authoritative with a 5 s TTL, and the SOA's minimum is 5 s too, so a resolver caches neither a VM's address
// nor its absence for longer: VMs come and go by the second.
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { BangerError, messageOf } from '../../protocol/errors.ts';

/** The zone served, without dots. */
export const VM_DNS_ZONE = 'vm';
/** TTL of every record, and of cached negative answers (the SOA minimum). */
export const VM_DNS_TTL_SEC = 5;
/** A TCP connection that sends nothing for this long is closed. */
const TCP_IDLE_MS = 10_000;
/** TCP connections open at once; more wait in the kernel's backlog. */
const TCP_MAX_CONNECTIONS = 64;
/** Tries at a free port for both UDP and TCP when the caller asked for any port (0). */
const EPHEMERAL_TRIES = 5;

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
type Rcode = (typeof RCODE)[keyof typeof RCODE];

const SOA: dnsPacket.SoaAnswer = {
  type: 'SOA', name: VM_DNS_ZONE, class: 'IN', ttl: VM_DNS_TTL_SEC,
  // The zone has no serial worth tracking: nothing transfers it, and every answer is live.
  data: { mname: VM_DNS_ZONE, rname: `hostmaster.${VM_DNS_ZONE}`, serial: 1, refresh: 3600, retry: 600, expire: 86_400, minimum: VM_DNS_TTL_SEC },
};
const NS: dnsPacket.StringAnswer = { type: 'NS', name: VM_DNS_ZONE, class: 'IN', ttl: VM_DNS_TTL_SEC, data: VM_DNS_ZONE };

/** The IPv4 address of the running VM with this name (lowercase, without `.vm`), or undefined. */
export type VmAddressLookup = (name: string) => string | undefined;

/**
 * The reply to one DNS message, or null when it is to be dropped: it does not parse, or it is itself a reply
 * (answering replies could loop between two servers).
 */
export function answerDnsQuery(message: Buffer, lookup: VmAddressLookup): Buffer | null {
  let query: dnsPacket.DecodedPacket;
  try {
    query = dnsPacket.decode(message);
  } catch {
    return null;
  }
  if (query.flag_qr) return null;
  const opcode = ((query.flags ?? 0) >> 11) & 0xf;
  const questions = query.questions ?? [];
  const edns = (query.additionals ?? []).some((a) => a.type === 'OPT');
  const reply = (rcode: Rcode, o: { aa?: boolean; question?: boolean; answers?: dnsPacket.Answer[]; authorities?: dnsPacket.Answer[] } = {}): Buffer =>
    dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      // QR comes from type; opcode and RD are echoed; RA stays clear: nothing here recurses.
      flags: (opcode << 11) | (o.aa ? dnsPacket.AUTHORITATIVE_ANSWER : 0) | (query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0) | rcode,
      questions: o.question === false ? [] : questions,
      answers: o.answers ?? [],
      authorities: o.authorities ?? [],
      additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [],
    });
  // Every resolver sends exactly one question; what more would mean is not defined (RFC 9619): FORMERR.
  if (questions.length !== 1) return reply(RCODE.FORMERR, { question: false });
  if (opcode !== 0) return reply(RCODE.NOTIMP);
  const question = questions[0]!;
  const name = question.name.toLowerCase().replace(/\.$/, '');
  const inZone = name === VM_DNS_ZONE || name.endsWith(`.${VM_DNS_ZONE}`);
  // Records here are class IN; a query for another class (CH's version.bind, say) is not for this server.
  if (!inZone || (question.class !== undefined && question.class !== 'IN' && question.class !== 'ANY')) return reply(RCODE.REFUSED);
  const type = question.type as string;
  if (name === VM_DNS_ZONE) {
    const apex = type === 'SOA' ? [SOA] : type === 'NS' ? [NS] : type === 'ANY' ? [SOA, NS] : [];
    return reply(RCODE.NOERROR, { aa: true, answers: apex, authorities: apex.length === 0 ? [SOA] : [] });
  }
  let ip: string | undefined;
  try {
    ip = lookup(name.slice(0, -VM_DNS_ZONE.length - 1));
  } catch {
    return reply(RCODE.SERVFAIL);
  }
  if (ip === undefined) return reply(RCODE.NXDOMAIN, { aa: true, authorities: [SOA] });
  if (!net.isIPv4(ip)) return reply(RCODE.SERVFAIL);
  if (type === 'A' || type === 'ANY') {
    // The owner name as asked, so a resolver that matches case (0x20 randomization) accepts the answer.
    return reply(RCODE.NOERROR, { aa: true, answers: [{ type: 'A', name: question.name, class: 'IN', ttl: VM_DNS_TTL_SEC, data: ip }] });
  }
  // The name exists but has no record of this type (AAAA: guests have IPv4 only): NODATA.
  return reply(RCODE.NOERROR, { aa: true, authorities: [SOA] });
}

export interface VmDnsServerOptions {
  /** An IPv4 address to listen on; 127.0.0.1 for bangerd. */
  host: string;
  /** UDP and TCP port; 0 picks a free one (see `port` after start). */
  port: number;
  lookup: VmAddressLookup;
  logger?: (message: string) => void;
}

/** An authoritative server for `.vm` on one address and port, over UDP and TCP. */
export class VmDnsServer {
  private readonly options: VmDnsServerOptions;
  private udp: dgram.Socket | null = null;
  private tcp: net.Server | null = null;
  private readonly connections = new Set<net.Socket>();
  private boundPort: number | null = null;

  constructor(options: VmDnsServerOptions) {
    if (!net.isIPv4(options.host)) throw new Error(`VmDnsServer: host must be an IPv4 address, got ${JSON.stringify(options.host)}`);
    if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65_535) throw new Error(`VmDnsServer: bad port ${options.port}`);
    this.options = options;
  }

  /** The port both sockets are bound to; only after start. */
  get port(): number {
    if (this.boundPort === null) throw new Error('VmDnsServer: not started');
    return this.boundPort;
  }

  /** Binds UDP and TCP; NETWORK_FAILED (with what to change) when the port is taken or not allowed. */
  async start(): Promise<void> {
    if (this.udp) throw new Error('VmDnsServer: already started');
    const tries = this.options.port === 0 ? EPHEMERAL_TRIES : 1;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.bind(this.options.port);
        return;
      } catch (err) {
        await this.close();
        // UDP got a free port that TCP finds taken: another free one may be free for both.
        if (attempt < tries && (err as NodeJS.ErrnoException).code === 'EADDRINUSE') continue;
        throw this.bindError(err);
      }
    }
  }

  private async bind(port: number): Promise<void> {
    const { host } = this.options;
    const udp = dgram.createSocket({ type: 'udp4' });
    this.udp = udp;
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind({ address: host, port, exclusive: true }, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    udp.on('error', (err) => this.log(`dns: UDP socket error: ${messageOf(err)}`));
    udp.on('message', (message, from) => {
      const reply = this.answer(message);
      if (reply) udp.send(reply, from.port, from.address, (err) => err && this.log(`dns: cannot answer ${from.address}:${from.port}: ${messageOf(err)}`));
    });
    const bound = udp.address().port;
    const tcp = net.createServer((socket) => this.serveConnection(socket));
    tcp.maxConnections = TCP_MAX_CONNECTIONS;
    this.tcp = tcp;
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen({ host, port: bound, exclusive: true }, () => {
        tcp.off('error', reject);
        resolve();
      });
    });
    tcp.on('error', (err) => this.log(`dns: TCP server error: ${messageOf(err)}`));
    this.boundPort = bound;
  }

  /** TCP: each message has a two-byte length in front; a message that does not parse ends the connection. */
  private serveConnection(socket: net.Socket): void {
    this.connections.add(socket);
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    socket.on('close', () => this.connections.delete(socket));
    socket.on('error', () => socket.destroy());
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2) {
        const length = pending.readUInt16BE(0);
        if (pending.length < 2 + length) break;
        const message = pending.subarray(2, 2 + length);
        pending = pending.subarray(2 + length);
        const reply = this.answer(message);
        if (!reply) {
          socket.destroy();
          return;
        }
        const framed = Buffer.alloc(2 + reply.length);
        framed.writeUInt16BE(reply.length, 0);
        reply.copy(framed, 2);
        socket.write(framed);
      }
    });
  }

  private bindError(err: unknown): BangerError {
    const { host, port } = this.options;
    const where = `${host}:${port}`;
    const change = 'set another [dns] port in config.toml (0 turns the .vm DNS server off), then restart: banger daemon stop && banger daemon start';
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') return new BangerError('NETWORK_FAILED', `cannot serve .vm DNS on ${where}: the port is in use`, { hint: `see what holds it: ss -lunp 'sport = :${port}'; or ${change}`, cause: err });
    if (code === 'EACCES') return new BangerError('NETWORK_FAILED', `cannot serve .vm DNS on ${where}: ports below 1024 need root`, { hint: change, cause: err });
    return new BangerError('NETWORK_FAILED', `cannot serve .vm DNS on ${where}: ${messageOf(err)}`, { hint: change, cause: err });
  }

  /** Stops serving: closes both sockets and every open TCP connection. */
  async close(): Promise<void> {
    const udp = this.udp;
    const tcp = this.tcp;
    this.udp = null;
    this.tcp = null;
    this.boundPort = null;
    for (const socket of this.connections) socket.destroy();
    this.connections.clear();
    await Promise.all([
      udp ? new Promise<void>((resolve) => {
        try {
          udp.close(() => resolve());
        } catch {
          // Never bound: nothing to close.
          resolve();
        }
      }) : undefined,
      tcp?.listening ? new Promise<void>((resolve) => tcp.close(() => resolve())) : undefined,
    ]);
  }

  /** The caller's lookup; one that throws is logged here and answered SERVFAIL. */
  private readonly lookup: VmAddressLookup = (name) => {
    let ip: string | undefined;
    try {
      ip = this.options.lookup(name);
    } catch (err) {
      this.log(`dns: looking up ${name}.${VM_DNS_ZONE} failed: ${messageOf(err)}`);
      throw err;
    }
    if (ip !== undefined && !net.isIPv4(ip)) this.log(`dns: the address of ${name}.${VM_DNS_ZONE} is not IPv4: ${JSON.stringify(ip)}`);
    return ip;
  };

  /** answerDnsQuery, where a failure (a bug, not a bad packet) is logged and the message dropped: it must not end bangerd. */
  private answer(message: Buffer): Buffer | null {
    try {
      return answerDnsQuery(message, this.lookup);
    } catch (err) {
      this.log(`dns: cannot answer a query: ${messageOf(err)}`);
      return null;
    }
  }

  private log(message: string): void {
    this.options.logger?.(message);
  }
}
