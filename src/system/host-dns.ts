// The host's nameservers, for guests whose image brings no resolv.conf (container images get theirs from the
// runtime). Loopback resolvers (systemd-resolved's 127.0.0.53, dnsmasq on 127.0.0.1) mean nothing in a guest.
import fs from 'node:fs';
import { IPV4_PATTERN } from './config.ts';


export function hostNameservers(file = '/etc/resolv.conf'): string[] {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m && IPV4_PATTERN.test(m[1]!) && !m[1]!.startsWith('127.') && !out.includes(m[1]!)) out.push(m[1]!);
  }
  return out.slice(0, 3);
}
