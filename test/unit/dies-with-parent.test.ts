import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import readline from 'node:readline';
import { describe, it } from 'node:test';
import { DiesWithParentRunner, withDeathSignal } from '../../src/system/dies-with-parent.ts';
import { ownerArgv } from '../../src/system/as-owner.ts';
import { FakeProcessRunner } from '../fakes/fake-process-runner.ts';
import { fails } from '../fakes/expect-error.ts';

describe('DiesWithParentRunner', () => {
  it('runs a program under setpriv --pdeathsig KILL, with its arguments untouched', async () => {
    const runner = new FakeProcessRunner();
    const signal = new AbortController().signal;
    await new DiesWithParentRunner(runner).run('debootstrap', ['--variant=minbase', 'bookworm', '/tmp/x'], { signal });
    assert.deepEqual([runner.calls[0]!.command, ...runner.calls[0]!.args], ['setpriv', '--pdeathsig', 'KILL', '--', 'debootstrap', '--variant=minbase', 'bookworm', '/tmp/x']);
    assert.equal(runner.calls[0]!.options.signal, signal);
  });

  it('gives the option to a setpriv that drops to the owner, since changing uids after it would clear it', () => {
    const argv = [...ownerArgv({ uid: 1000, gid: 1000 }), 'cp', '--sparse=always', '/dev/stdin', '/c/x.partial'];
    assert.deepEqual(withDeathSignal(argv[0]!, argv.slice(1)), [
      'setpriv', '--pdeathsig', 'KILL', '--reuid=1000', '--regid=1000', '--init-groups', '--', 'cp', '--sparse=always', '/dev/stdin', '/c/x.partial',
    ]);
    assert.equal(withDeathSignal(argv[0]!, argv.slice(1)).filter((a) => a === 'setpriv').length, 1);
  });

  it('reports a program setpriv cannot find as MISSING_TOOL, and passes other failures through', async () => {
    const runner = new FakeProcessRunner().on('setpriv', ({ args }) =>
      args.includes('mkfs.ext4') ? { code: 127, stderr: 'setpriv: failed to execute mkfs.ext4: No such file or directory\n' } : { code: 1, stderr: 'RTNETLINK answers: File exists\n' });
    const dies = new DiesWithParentRunner(runner);
    await assert.rejects(dies.run('mkfs.ext4', ['-q']), fails('MISSING_TOOL', /mkfs\.ext4 is not installed/, { hint: true }));
    assert.deepEqual(await dies.run('ip', ['link', 'add']), { code: 1, signal: null, stdout: '', stderr: 'RTNETLINK answers: File exists\n' });
  });

  it('ends a child of a real process that is killed with SIGKILL (what a killed bangerd-root leaves of a build)', async () => {
    // A process like bangerd-root: it runs a long child through the runner, then is killed outright.
    const script = `
      const { DiesWithParentRunner } = await import(${JSON.stringify(new URL('../../src/system/dies-with-parent.ts', import.meta.url).href)});
      const { NodeProcessRunner } = await import(${JSON.stringify(new URL('../../src/system/process.ts', import.meta.url).href)});
      await new DiesWithParentRunner(new NodeProcessRunner()).run('sh', ['-c', 'echo $$; exec sleep 600'], { onLine: (l) => console.log(l) });
    `;
    const parent = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = readline.createInterface({ input: parent.stdout! });
    const child = Number(await new Promise<string>((resolve) => lines.once('line', resolve)));
    assert.ok(child > 0);
    process.kill(child, 0);
    parent.kill('SIGKILL');
    // The kernel sends the child its death signal as the parent exits; waiting for that, not for a time.
    for (let i = 0; ; i++) {
      try {
        process.kill(child, 0);
      } catch {
        break;
      }
      assert.ok(i < 2000, `the child ${child} outlived its killed parent`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  });
});

