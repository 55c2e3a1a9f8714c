import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ChosenFirewall } from '../../src/helper/chosen-firewall.ts';
import { detectFirewallTool } from '../../src/helper/guest-firewall.ts';
import { IptablesFirewall } from '../../src/helper/iptables-firewall.ts';
import { NftFirewall, nftRuleset, nftTableName } from '../../src/helper/nft-firewall.ts';
import { FakeProcessRunner, type FakeCall } from '../fakes/fake-process-runner.ts';
import { fails } from '../fakes/expect-error.ts';

const argv = (c: FakeCall): string[] => [c.command, ...c.args];

describe('NftFirewall', () => {
  /** Stands in for nft: `-f -` scripts are recorded; the set's elements are kept; list answers in nft's JSON. */
  function fakeNft(runner: FakeProcessRunner, options: { tableExists?: boolean; failWith?: string } = {}) {
    let exists = options.tableExists ?? false;
    const elems = new Set<string>();
    const scripts: string[] = [];
    const nft = (args: string[], input: string | undefined) => {
      if (options.failWith) return { code: 1, stderr: options.failWith };
      if (args[0] === '-f') {
        scripts.push(input ?? '');
        const lines = (input ?? '').trim().split('\n');
        if (!exists && !lines.some((l) => l.startsWith('add table'))) return { code: 1, stderr: 'Error: No such file or directory\nadd element inet ...' };
        exists = true;
        for (const l of lines) {
          const m = /^(add|delete) element \S+ \S+ nat_guests \{ (\S+) \}$/.exec(l);
          if (m?.[1] === 'add') elems.add(m[2]!);
          if (m?.[1] === 'delete') elems.delete(m[2]!);
        }
        return { code: 0 };
      }
      if (args.join(' ') === '-j list set inet banger_banger0 nat_guests') {
        if (!exists) return { code: 1, stderr: 'Error: No such file or directory\nlist set inet banger_banger0 nat_guests' };
        const set = { family: 'inet', name: 'nat_guests', table: 'banger_banger0', type: 'ipv4_addr', handle: 1, ...(elems.size ? { elem: [...elems] } : {}) };
        return { stdout: JSON.stringify({ nftables: [{ metainfo: { version: '1.0.6' } }, { set }] }) };
      }
      return { code: 99, stderr: `fake nft: ${args.join(' ')}` };
    };
    runner.on('nft', (c) => nft(c.args, c.options.input));
    runner.on('ip', (c) => (c.args[0] === 'netns' && c.args[1] === 'exec' && c.args[3] === 'nft' ? nft(c.args.slice(4), c.options.input) : { code: 0 }));
    return { elems, scripts };
  }

  it('names one table per bridge, and two bridges never share one', () => {
    assert.equal(nftTableName('banger0'), 'banger_banger0');
    const names = ['a-b', 'a_b', 'a.b', 'a_hb', 'a__b'].map(nftTableName);
    assert.equal(new Set(names).size, names.length, names.join(' '));
    for (const n of names) assert.match(n, /^[a-zA-Z_][a-zA-Z0-9_]*$/);
  });

  it('isolates the bridge in one transaction: only NAT\'d guests leave it, only replies enter it', async () => {
    const runner = new FakeProcessRunner();
    const nft = fakeNft(runner);
    await new NftFirewall({ runner, bridge: 'banger0', netns: null }).isolate();
    assert.deepEqual(runner.calls.map(argv), [['nft', '-f', '-']]);
    const script = nft.scripts[0]!;
    assert.equal(script, `${nftRuleset('banger0').join('\n')}\n`);
    // The order decides: accepts before the drops, and the set's elements kept (chains flushed, not the table).
    const rules = script.split('\n').filter((l) => l.startsWith('add rule'));
    assert.deepEqual(rules.map((l) => l.replace('add rule inet banger_banger0 ', '')), [
      'forward iifname "banger0" oifname "banger0" accept',
      'forward iifname "banger0" ip saddr @nat_guests accept',
      'forward iifname "banger0" drop',
      'forward oifname "banger0" ct state established,related accept',
      'forward oifname "banger0" drop',
      'postrouting oifname != "banger0" ip saddr @nat_guests masquerade',
    ]);
    assert.ok(!/delete table|flush table|flush set|flush ruleset/.test(script));
  });

  it('enables NAT with forwarding on, then one set element, inside the namespace', async () => {
    const runner = new FakeProcessRunner();
    const nft = fakeNft(runner);
    const fw = new NftFirewall({ runner, bridge: 'banger0', netns: 'ns1' });
    await fw.enableNat('172.30.0.5');
    await fw.enableNat('172.30.0.5');
    await fw.enableNat('172.30.0.6');
    assert.deepEqual(runner.calls.map(argv).slice(0, 2), [
      ['ip', 'netns', 'exec', 'ns1', 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'],
      ['ip', 'netns', 'exec', 'ns1', 'nft', '-f', '-'],
    ]);
    assert.match(nft.scripts[0]!, /\nadd element inet banger_banger0 nat_guests \{ 172\.30\.0\.5 \}\n$/);
    assert.deepEqual(await fw.natAddresses(), ['172.30.0.5', '172.30.0.6']);
    await fw.disableNat('172.30.0.5');
    await fw.disableNat('172.30.0.5');
    assert.deepEqual(await fw.natAddresses(), ['172.30.0.6']);
  });

  it('disabling or listing without banger\'s table is fine: there is nothing to remove', async () => {
    const runner = new FakeProcessRunner();
    fakeNft(runner);
    const fw = new NftFirewall({ runner, bridge: 'banger0', netns: null });
    await fw.disableNat('172.30.0.5');
    assert.deepEqual(await fw.natAddresses(), []);
  });

  it('reports any other nft failure as TOOL_FAILED with the command and nft\'s words', async () => {
    const runner = new FakeProcessRunner();
    fakeNft(runner, { tableExists: true, failWith: 'Error: Could not process rule: Operation not permitted' });
    const fw = new NftFirewall({ runner, bridge: 'banger0', netns: 'ns1' });
    await assert.rejects(fw.disableNat('172.30.0.5'), fails('TOOL_FAILED', /^ip netns exec ns1 nft -f - failed \(exit status 1\): .*Operation not permitted/));
    await assert.rejects(fw.natAddresses(), fails('TOOL_FAILED', /nft -j list set inet banger_banger0 nat_guests failed/));
    await assert.rejects(fw.isolate(), fails('TOOL_FAILED', /Operation not permitted/, { hint: true }));
  });
});

describe('IptablesFirewall', () => {
  /** Stands in for iptables -w -t TABLE: chains are lists of rule strings, as -S prints them (close enough). */
  function fakeIptables(runner: FakeProcessRunner) {
    const chains = new Map<string, string[]>([['filter/FORWARD', []], ['nat/POSTROUTING', []]]);
    runner.on('iptables', ({ args }) => {
      assert.deepEqual(args.slice(0, 2), ['-w', '-t']);
      const table = args[2]!;
      const [op, chain, ...rest] = args.slice(3);
      const key = `${table}/${chain}`;
      const rules = chains.get(key);
      const rule = rest.map((a) => (a.includes(':') ? `"${a}"` : a)).join(' ');
      if (op === '-N') {
        if (rules) return { code: 1, stderr: 'iptables: Chain already exists.' };
        chains.set(key, []);
        return { code: 0 };
      }
      if (!rules) return { code: 1, stderr: `iptables: No chain/target/match by that name.` };
      switch (op) {
        case '-C': return { code: rules.includes(rule) ? 0 : 1 };
        case '-A': rules.push(rule); return { code: 0 };
        case '-I': rules.splice(Number(rest[0]) - 1, 0, rest.slice(1).map((a) => (a.includes(':') ? `"${a}"` : a)).join(' ')); return { code: 0 };
        case '-D': {
          const i = rules.indexOf(rule);
          if (i < 0) return { code: 1, stderr: 'iptables: Bad rule' };
          rules.splice(i, 1);
          return { code: 0 };
        }
        case '-F': rules.length = 0; return { code: 0 };
        case '-S': return { stdout: [`-N ${chain}`, ...rules.map((r) => `-A ${chain} ${r}`)].join('\n') + '\n' };
        default: return { code: 2, stderr: `fake iptables: ${args.join(' ')}` };
      }
    });
    return chains;
  }

  it('jumps to its own chains from FORWARD and POSTROUTING, once, and ends the forward chain in drops', async () => {
    const runner = new FakeProcessRunner();
    const chains = fakeIptables(runner);
    const fw = new IptablesFirewall({ runner, bridge: 'banger0', netns: null });
    await fw.isolate();
    await fw.isolate();
    assert.deepEqual(chains.get('filter/FORWARD'), ['-j BANGER-FWD-banger0']);
    assert.deepEqual(chains.get('nat/POSTROUTING'), ['-j BANGER-NAT-banger0']);
    assert.deepEqual(chains.get('filter/BANGER-FWD-banger0'), [
      '-i banger0 -o banger0 -j ACCEPT',
      '-o banger0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
      '-i banger0 -j DROP',
      '-o banger0 -j DROP',
    ]);
  });

  it('gives a guest NAT with two tagged rules, before the drops, and takes exactly those away', async () => {
    const runner = new FakeProcessRunner();
    const chains = fakeIptables(runner);
    const fw = new IptablesFirewall({ runner, bridge: 'banger0', netns: null });
    await fw.enableNat('172.30.0.5');
    await fw.enableNat('172.30.0.5');
    await fw.enableNat('172.30.0.6');
    assert.deepEqual(runner.calls.map(argv)[0], ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    assert.equal(chains.get('filter/BANGER-FWD-banger0')![0], '-i banger0 -s 172.30.0.6 -m comment --comment "banger-nat:172.30.0.6" -j ACCEPT');
    assert.equal(chains.get('filter/BANGER-FWD-banger0')!.at(-1), '-o banger0 -j DROP');
    assert.deepEqual(chains.get('nat/BANGER-NAT-banger0')!.length, 2);
    assert.deepEqual(await fw.natAddresses(), ['172.30.0.5', '172.30.0.6']);
    await fw.disableNat('172.30.0.5');
    await fw.disableNat('172.30.0.5');
    assert.deepEqual(await fw.natAddresses(), ['172.30.0.6']);
    assert.ok(!chains.get('nat/BANGER-NAT-banger0')!.some((r) => r.includes('172.30.0.5')));
  });

  it('writes a forward chain changed by hand afresh, keeping the guests with NAT', async () => {
    const runner = new FakeProcessRunner();
    const chains = fakeIptables(runner);
    const fw = new IptablesFirewall({ runner, bridge: 'banger0', netns: null });
    await fw.enableNat('172.30.0.5');
    chains.get('filter/BANGER-FWD-banger0')!.splice(2, 1);
    await fw.isolate();
    const rules = chains.get('filter/BANGER-FWD-banger0')!;
    assert.equal(rules.length, 5);
    assert.match(rules[0]!, /banger-nat:172\.30\.0\.5/);
    assert.equal(rules[3], '-i banger0 -j DROP');
  });

  it('has nothing to remove or list where its chains do not exist', async () => {
    const runner = new FakeProcessRunner();
    fakeIptables(runner);
    const fw = new IptablesFirewall({ runner, bridge: 'banger0', netns: null });
    await fw.disableNat('172.30.0.5');
    assert.deepEqual(await fw.natAddresses(), []);
  });
});

describe('choosing the firewall', () => {
  it('prefers nft, falls back to iptables, and says what to install when neither is there', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-fw-'));
    try {
      const bin = (name: string) => fs.writeFileSync(path.join(dir, name), '#!/bin/sh\n', { mode: 0o755 });
      assert.throws(() => detectFirewallTool(dir), fails('MISSING_TOOL', /neither nft nor iptables/, { hint: true }));
      bin('iptables');
      assert.equal(detectFirewallTool(dir), 'iptables');
      bin('nft');
      assert.equal(detectFirewallTool(dir), 'nft');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('uses the tool it detects, and runs one change at a time', async () => {
    const runner = new FakeProcessRunner();
    let running = 0;
    let most = 0;
    runner.on('iptables', async () => {
      most = Math.max(most, ++running);
      await new Promise((resolve) => setImmediate(resolve));
      running--;
      return { code: 1, stderr: 'iptables: No chain/target/match by that name.' };
    });
    const fw = new ChosenFirewall({ runner, bridge: 'banger0', netns: null }, () => 'iptables');
    await Promise.all([fw.disableNat('172.30.0.5'), fw.disableNat('172.30.0.6'), fw.natAddresses()]);
    assert.ok(runner.calls.length >= 5);
    assert.ok(runner.calls.every((c) => c.command === 'iptables'));
    assert.equal(most, 1);
  });
});
