import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { unitChecks } from '../../src/cli/doctor-host.ts';
import type { InstallRecord } from '../../src/system/install-layout.ts';
import { daemonUnit, HELPER_CAPABILITIES, helperUnit, type UnitSpec } from '../../src/system/systemd-units.ts';

const spec = (over: Partial<UnitSpec> = {}): UnitSpec => ({
  current: '/opt/banger/current', owner: { name: 'alice', uid: 1000, gid: 1000, group: 'alice', home: '/home/alice' },
  helperArgs: ['--owner', '1000:1000', '--state-dir', '/home/alice/.local/state/banger', '--socket', '/home/alice/.local/state/banger/run/bangerd-root.sock'],
  environment: {}, ...over,
});
const lines = (text: string): string[] => text.split('\n');

describe('systemd units', () => {
  it('keep guests running through a stop or restart of either service', () => {
    for (const text of [helperUnit(spec()), daemonUnit(spec())]) {
      for (const line of ['KillMode=process', 'SendSIGKILL=no', 'RuntimeDirectory=banger', 'RuntimeDirectoryPreserve=yes']) assert.ok(lines(text).includes(line), line);
    }
  });

  it('run the helper as root with only the capabilities its operations need, and bangerd as the owner with none', () => {
    const helper = lines(helperUnit(spec()));
    assert.ok(!helper.some((l) => l.startsWith('User=')));
    assert.ok(helper.includes(`CapabilityBoundingSet=${HELPER_CAPABILITIES.join(' ')}`));
    assert.ok(!HELPER_CAPABILITIES.includes('CAP_SYS_MODULE' as never) && !HELPER_CAPABILITIES.includes('CAP_SYS_BOOT' as never));
    assert.ok(helper.includes('ExecStart=/opt/banger/current/bin/bangerd-root --owner 1000:1000 --state-dir /home/alice/.local/state/banger --socket /home/alice/.local/state/banger/run/bangerd-root.sock'));
    const daemon = lines(daemonUnit(spec()));
    assert.ok(daemon.includes('User=alice') && daemon.includes('Group=alice'));
    assert.ok(daemon.includes('CapabilityBoundingSet='), 'an owner that is not root gets no capability at all');
    assert.ok(daemon.includes('NoNewPrivileges=yes'));
    assert.ok(daemon.includes('Environment=HOME=/home/alice'));
    assert.ok(daemon.includes('Wants=bangerd-root.service') && !daemon.some((l) => l.startsWith('Requires=')));
  });

  it('quote what systemd would otherwise split or expand, and carry BANGER_HOME and BANGER_NETNS', () => {
    const text = lines(helperUnit(spec({ helperArgs: ['--state-dir', '/srv/my state/100%'], environment: { BANGER_HOME: '/srv/b h', BANGER_NETNS: 'ns1' } })));
    assert.ok(text.includes('ExecStart=/opt/banger/current/bin/bangerd-root --state-dir "/srv/my state/100%%"'), text.join('\n'));
    assert.ok(text.includes('Environment="BANGER_HOME=/srv/b h"'));
    assert.ok(text.includes('Environment=BANGER_NETNS=ns1'));
  });
});

describe('doctor: the units of a service install', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-units-'));
  const record: InstallRecord = {
    version: '1.0.0', commit: null, builtAt: null, owner: { name: 'root', uid: 0, gid: 0 }, unitDir: dir, units: ['bangerd-root.service', 'bangerd.service'],
    binDir: '/usr/local/bin', installedAt: 'x', environment: {},
  };

  it('says nothing without an install, and fails missing units, units verify complains of, and inactive ones', () => {
    assert.deepEqual(unitChecks(null), []);
    assert.match(unitChecks(record, () => null)[0]!.summary, /unit files missing/);
    for (const u of record.units) fs.writeFileSync(path.join(dir, u), '[Service]\n');
    assert.match(unitChecks(record, () => 'bangerd.service:3: Unknown key name')[0]!.summary, /systemd-analyze verify: .*Unknown key/);
    const inactive = unitChecks(record, () => null, (u) => (u === 'bangerd.service' ? 'failed' : 'active'))[0]!;
    assert.equal(inactive.status, 'fail');
    assert.match(inactive.fix!, /systemctl start bangerd\.service/);
    assert.equal(unitChecks(record, () => null, () => 'active')[0]!.status, 'ok');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
