// bangerd-root's net.resolvedRoute and net.resolvedUnroute, through its request handlers, against a fake runner:
// the exact resolvectl argv, and what it refuses before running anything.
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { HelperService, type HelperScope } from '../../src/helper/helper-service.ts';
import type { BangerError } from '../../src/protocol/errors.ts';
import { HELPER_METHODS } from '../../src/protocol/privileged-ops.ts';
import { fails } from '../fakes/expect-error.ts';
import { FakeGuestFirewall } from '../fakes/fake-guest-firewall.ts';
import { FakeProcessRunner, type FakeCall, type FakeHandler } from '../fakes/fake-process-runner.ts';

const DEATH_SIGNAL = ['setpriv', '--pdeathsig', 'KILL', '--'];

const scope = (netns: string | null = null): HelperScope => ({
  owner: { uid: 1000, gid: 1000 },
  // Never touched by these operations.
  stateDir: '/nonexistent/state', cacheDir: '/nonexistent/cache', runDir: '/nonexistent/run', netnsDir: '/nonexistent/netns', procDir: '/nonexistent/proc',
  network: { bridge: 'banger0', subnet: '172.30.0.0/24', netns },
});

/** The argv each call ran, without the death-signal prefix, which every call must have. */
function argvOf(calls: FakeCall[]): string[][] {
  return calls.map((c) => {
    const argv = [c.command, ...c.args];
    assert.deepEqual(argv.slice(0, DEATH_SIGNAL.length), DEATH_SIGNAL, `${argv.join(' ')} does not die with the helper`);
    return argv.slice(DEATH_SIGNAL.length);
  });
}

/** resolvectl as the fake runs it (under setpriv): `answer` by subcommand, exit 0 otherwise. */
function fakeResolvectl(runner: FakeProcessRunner, answer: Record<string, ReturnType<FakeHandler>> = {}): void {
  runner.on('setpriv', ({ args }) => {
    const argv = args.slice(DEATH_SIGNAL.length - 1);
    if (argv[0] !== 'resolvectl') return { code: 99, stderr: `fake: unexpected ${argv.join(' ')}` };
    return answer[argv[1]!] ?? { code: 0 };
  });
}

/** What setpriv prints when the program it is to run does not exist. */
const MISSING = { code: 127, stderr: 'setpriv: failed to execute resolvectl: No such file or directory\n' };

describe('routing .vm through systemd-resolved', () => {
  let runner: FakeProcessRunner;
  let call: (method: string, params: unknown, netns?: string | null) => Promise<unknown>;

  beforeEach(() => {
    runner = new FakeProcessRunner();
    call = (method, params, netns = null) => {
      const helper = new HelperService(runner, scope(netns), { firewall: new FakeGuestFirewall() });
      return helper.handlers(() => assert.fail('no shutdown')).get(method)!(params, { signal: new AbortController().signal, progress: () => undefined });
    };
  });

  it('is served for every method bangerd may call', () => {
    const helper = new HelperService(runner, scope(), { firewall: new FakeGuestFirewall() });
    const served = helper.handlers(() => undefined);
    for (const method of HELPER_METHODS) assert.ok(served.has(method), method);
    assert.ok(HELPER_METHODS.includes('net.resolvedRoute') && HELPER_METHODS.includes('net.resolvedUnroute'));
  });

  it('route sets the DNS server 127.0.0.1:PORT and the routing domain ~vm on the bridge', async () => {
    fakeResolvectl(runner);
    await call('net.resolvedRoute', { bridge: 'banger0', port: 42069 });
    assert.deepEqual(argvOf(runner.calls), [
      ['resolvectl', 'dns', 'banger0', '127.0.0.1:42069'],
      ['resolvectl', 'domain', 'banger0', '~vm'],
    ]);
  });

  it('unroute reverts the bridge', async () => {
    fakeResolvectl(runner);
    await call('net.resolvedUnroute', { bridge: 'banger0' });
    assert.deepEqual(argvOf(runner.calls), [['resolvectl', 'revert', 'banger0']]);
  });

  describe('refusals, before anything runs', () => {
    const outOfScope = (err: unknown): boolean => {
      fails('HELPER_REFUSED', /bangerd-root refused: it manages bridge banger0, not docker0/)(err);
      assert.match((err as BangerError).hint!, /banger daemon stop && banger daemon start/);
      return true;
    };

    it('refuses a bridge other than the one the helper was started for', async () => {
      fakeResolvectl(runner);
      await assert.rejects(call('net.resolvedRoute', { bridge: 'docker0', port: 42069 }), outOfScope);
      await assert.rejects(call('net.resolvedUnroute', { bridge: 'docker0' }), outOfScope);
      await assert.rejects(call('net.resolvedRoute', { bridge: 'eth0; reboot', port: 42069 }), fails('HELPER_REFUSED', /bridge name "eth0; reboot" is not valid/));
      assert.deepEqual(runner.calls, []);
    });

    for (const port of [0, -1, 65_536, 53.5]) {
      it(`refuses port ${port}`, async () => {
        fakeResolvectl(runner);
        await assert.rejects(call('net.resolvedRoute', { bridge: 'banger0', port }), fails('HELPER_REFUSED', /DNS port must be a whole number from 1 to 65535/));
        assert.deepEqual(runner.calls, []);
      });
    }

    it('refuses params that do not fit the schema, naming the field', async () => {
      fakeResolvectl(runner);
      const disagree = (method: string, field: RegExp) => (err: unknown): boolean => {
        fails('HELPER_REFUSED', new RegExp(`^bangerd-root refused: ${method.replace('.', '\\.')}: .*${field.source}`), { hint: true })(err);
        assert.match((err as BangerError).hint!, /bangerd and bangerd-root disagree/);
        return true;
      };
      await assert.rejects(call('net.resolvedRoute', null), disagree('net.resolvedRoute', /params must be an object \(got null\)/));
      await assert.rejects(call('net.resolvedRoute', { bridge: 'banger0' }), disagree('net.resolvedRoute', /port is required/));
      await assert.rejects(call('net.resolvedRoute', { bridge: 'banger0', port: '42069' }), disagree('net.resolvedRoute', /port must be a number \(got string\)/));
      await assert.rejects(call('net.resolvedRoute', { bridge: 'banger0', port: 42069, domain: 'com' }), disagree('net.resolvedRoute', /unknown field "domain"/));
      await assert.rejects(call('net.resolvedUnroute', { bridge: 'banger0', port: 42069 }), disagree('net.resolvedUnroute', /unknown field "port"/));
      await assert.rejects(call('net.resolvedUnroute', undefined), disagree('net.resolvedUnroute', /params is required/));
      assert.deepEqual(runner.calls, []);
    });
  });

  describe('hosts where it cannot work', () => {
    it('without resolvectl, route fails as MISSING_TOOL with the manual recipe for this port', async () => {
      fakeResolvectl(runner, { dns: MISSING });
      await assert.rejects(call('net.resolvedRoute', { bridge: 'banger0', port: 5300 }), (err: unknown) => {
        fails('MISSING_TOOL', /resolvectl is not installed.*does not use systemd-resolved/)(err);
        const { hint } = err as BangerError;
        assert.match(hint!, /dnsmasq: server=\/vm\/127\.0\.0\.1#5300/);
        assert.match(hint!, /dig @127\.0\.0\.1 -p 5300 NAME\.vm/);
        assert.match(hint!, /banger ssh-config --install/);
        return true;
      });
      assert.equal(runner.calls.length, 1);
    });

    it('without resolvectl, unroute has nothing to undo and succeeds', async () => {
      fakeResolvectl(runner, { revert: MISSING });
      await call('net.resolvedUnroute', { bridge: 'banger0' });
      assert.deepEqual(argvOf(runner.calls), [['resolvectl', 'revert', 'banger0']]);
    });

    it('reports resolvectl failing (resolved not running) as TOOL_FAILED with its output, and sets nothing more', async () => {
      fakeResolvectl(runner, { dns: { code: 1, stderr: 'Failed to set DNS configuration: Unit dbus-org.freedesktop.resolve1.service not found.\n' } });
      await assert.rejects(call('net.resolvedRoute', { bridge: 'banger0', port: 42069 }), (err: unknown) => {
        fails('TOOL_FAILED', /resolvectl dns banger0 127\.0\.0\.1:42069 failed \(exit status 1\): Failed to set DNS configuration/)(err);
        assert.match((err as BangerError).hint!, /systemctl status systemd-resolved.*server=\/vm\/127\.0\.0\.1#42069/);
        return true;
      });
      assert.deepEqual(argvOf(runner.calls), [['resolvectl', 'dns', 'banger0', '127.0.0.1:42069']]);
    });

    it('takes the DNS server away again when the routing domain cannot be set', async () => {
      fakeResolvectl(runner, { domain: { code: 1, stderr: 'Failed to set domain configuration: Access denied\n' } });
      await assert.rejects(call('net.resolvedRoute', { bridge: 'banger0', port: 42069 }), fails('TOOL_FAILED', /resolvectl domain banger0 '~vm' failed.*Access denied/));
      assert.deepEqual(argvOf(runner.calls), [
        ['resolvectl', 'dns', 'banger0', '127.0.0.1:42069'],
        ['resolvectl', 'domain', 'banger0', '~vm'],
        ['resolvectl', 'revert', 'banger0'],
      ]);
    });

    it('unroute succeeds when the bridge is gone (resolved dropped its settings with it), and reports other failures', async () => {
      fakeResolvectl(runner, { revert: { code: 1, stderr: 'Failed to resolve interface "banger0": No such device\n' } });
      await call('net.resolvedUnroute', { bridge: 'banger0' });
      fakeResolvectl(runner, { revert: { code: 1, stderr: 'Failed to revert interface configuration: Connection timed out\n' } });
      await assert.rejects(call('net.resolvedUnroute', { bridge: 'banger0' }), (err: unknown) => {
        fails('TOOL_FAILED', /resolvectl revert banger0 failed \(exit status 1\): Failed to revert interface configuration: Connection timed out/)(err);
        assert.match((err as BangerError).hint!, /sudo resolvectl revert banger0/);
        return true;
      });
    });

    it('with the bridge in a network namespace, route fails with the manual recipe and unroute does nothing', async () => {
      fakeResolvectl(runner);
      await assert.rejects(call('net.resolvedRoute', { bridge: 'banger0', port: 42069 }, 'sandbox'), (err: unknown) => {
        fails('NETWORK_FAILED', /bridge banger0 is in network namespace sandbox/)(err);
        assert.match((err as BangerError).hint!, /server=\/vm\/127\.0\.0\.1#42069/);
        return true;
      });
      await call('net.resolvedUnroute', { bridge: 'banger0' }, 'sandbox');
      assert.deepEqual(runner.calls, []);
    });
  });
});
