import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { daemonStatus } from '../../src/cli/commands/daemon-status.ts';
import type { CliContext } from '../../src/cli/context.ts';
import { configuredNetwork, helperArgs } from '../../src/system/helper-command.ts';
import { resolvePaths } from '../../src/system/paths.ts';

describe('banger daemon status without a daemon', () => {
  let home: string;
  let saved: string | undefined;
  before(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-status-'));
    saved = process.env.BANGER_HOME;
    process.env.BANGER_HOME = home;
  });
  after(() => {
    if (saved === undefined) delete process.env.BANGER_HOME;
    else process.env.BANGER_HOME = saved;
    fs.rmSync(home, { recursive: true, force: true });
  });

  const context = (out: string[]): CliContext => ({
    output: { out: (t) => out.push(t), err: (t) => out.push(t) },
    guestCommand: null,
    client: () => Promise.reject(new Error('status must not start or connect to a daemon')),
    exit: (status) => assert.fail(`exit(${status}) called`),
  });

  it('says how to start it and exits with the daemon-unavailable status, in text and JSON', async () => {
    const text: string[] = [];
    assert.equal(await daemonStatus(context(text), {}), 15);
    assert.match(text.join('\n'), /bangerd: not running[\s\S]*start both: banger daemon start/);
    const json: string[] = [];
    assert.equal(await daemonStatus(context(json), { json: true }), 15);
    assert.equal(JSON.parse(json.join('\n')).running, false);
  });
});

describe('helperArgs', () => {
  it("pins the helper to the config's bridge and subnet and to BANGER_NETNS", () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-args-'));
    try {
      const paths = resolvePaths({ BANGER_HOME: home });
      fs.mkdirSync(path.dirname(paths.configFile), { recursive: true });
      fs.writeFileSync(paths.configFile, '[network]\nbridge = "bx0"\nsubnet = "10.9.8.0/24"\n');
      const args = helperArgs(paths, 1000, 1000, configuredNetwork(paths, { BANGER_HOME: home, BANGER_NETNS: 'sandbox' }));
      const value = (flag: string): string | undefined => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);
      assert.equal(value('--bridge'), 'bx0');
      assert.equal(value('--subnet'), '10.9.8.0/24');
      assert.equal(value('--netns'), 'sandbox');
      assert.equal(value('--owner'), '1000:1000');
      assert.equal(helperArgs(paths, 1000, 1000, configuredNetwork(paths, { BANGER_HOME: home })).includes('--netns'), false);
      // bangerd restarting its helper passes the network it runs with, whatever config.toml says by then.
      const running = helperArgs(paths, 0, 0, { bridge: 'banger0', subnet: '172.30.0.0/24', netns: 'e2e' });
      assert.deepEqual([running[running.indexOf('--bridge') + 1], running[running.indexOf('--subnet') + 1], running[running.indexOf('--netns') + 1]], ['banger0', '172.30.0.0/24', 'e2e']);
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
