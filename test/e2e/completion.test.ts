// Shell completion in the real shells (bash, zsh and fish from Debian's packages): each loads the script
// `banger completion SHELL` prints and is asked for the completions of a line, as at a TAB. The names come from
// a real bangerd in a fresh BANGER_HOME, where the test registers a small ext4 as an image and creates a VM
// from it with --no-start: no image build, no download and no QEMU (vmm.accel = "tcg" in its config.toml, so
// no KVM probe boots either), which keeps this file at seconds. A second BANGER_HOME with no daemon shows that
// a TAB then offers no names, prints nothing on stderr and starts nothing.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BANGER, e2eBanger } from './e2e-banger.ts';

const NETNS = `banger-e2e-cmpl-${process.pid}`;
const live = e2eBanger('banger-e2e-completion-', NETNS);
// Never started: what a TAB does when bangerd is not running.
const idle = e2eBanger('banger-e2e-completion-idle-', NETNS);
const VM = 'cmpl-box';
const IMAGE = 'cmpl-tiny';
let work = '';
let kernel = '';

type Shell = 'bash' | 'bash-completion' | 'zsh' | 'fish';

// zsh completes only inside its line editor: this runs an interactive zsh in a pty (zsh/zpty), loads the script
// after compinit, types the line and a TAB, and prints every match the completion system is handed (a compadd
// wrapper; calls with -O, -A or -D only compute lists, as _describe's do). The markers are typed in lower case
// and printed in upper case, so the terminal's echo of these lines never matches them.
const ZSH_CAPTURE = `zmodload zsh/zpty || exit 2
zpty shell zsh -f -i
zpty -w shell "PS1='' PS2=''"
zpty -w shell "autoload -Uz compinit && compinit -u -D"
zpty -w shell "source \${(q)1}"
zpty -w shell 'compadd() { if (( ! \${@[(I)-[OAD]]} )); then local -a m; builtin compadd -O m "$@"; print -rl -- \${(U):-match:}\${^m}; fi; builtin compadd "$@"; }'
zpty -w shell 'end_of_matches() { print -r -- \${(U):-end-of-matches} }; comppostfuncs=(end_of_matches)'
zpty -w shell "bindkey '^I' complete-word"
zpty -w -n shell "$2"$'\\t'
local out line
zpty -r -m shell out '*END-OF-MATCHES*'
for line in "\${(@f)out}"; do
  [[ $line == *MATCH:* ]] && print -r -- "\${\${line##*MATCH:}%$'\\r'}"
done
zpty -d shell
`;

// bash: the function `complete -p banger` names, called as bash calls it at a TAB (COMP_* set, the words
// split at COMP_WORDBREAKS' = as bash splits them). With bash-completion, the script is where its loader
// finds a command's completion on the first TAB, as after `banger completion bash > .../completions/banger`.
const BASH_DRIVER = `if [[ $WITH_BASH_COMPLETION == 1 ]]; then
  source /usr/share/bash-completion/bash_completion
  _completion_loader banger
else
  source <("$BANGER_BIN" completion bash)
fi
spec=$(complete -p banger) || exit 3
fn=\${spec#*-F }; fn=\${fn%% *}
COMP_LINE=$LINE; COMP_POINT=\${#LINE}; COMP_TYPE=9; COMP_KEY=9
read -ra COMP_WORDS <<<"\${LINE//=/ = }"
[[ $LINE == *' ' ]] && COMP_WORDS+=('')
COMP_CWORD=$((\${#COMP_WORDS[@]} - 1))
"$fn" banger "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\\n' "\${COMPREPLY[@]}"
`;

interface Asked {
  values: string[];
  status: number | null;
  stderr: string;
}

/**
 * Asks `shell` to complete `line` (it ends where the cursor is) with banger's completion, in the environment
 * `env` (live's or idle's BANGER_HOME); `banger` is on PATH unless `bangerOnPath` is false.
 */
function complete(shell: Shell, line: string, env: NodeJS.ProcessEnv = live.env, bangerOnPath = true): Asked {
  const PATH = bangerOnPath ? `${path.join(work, 'bin')}:${process.env.PATH}` : process.env.PATH;
  const options = { cwd: work, env: { ...env, PATH, LINE: line, BANGER_BIN: BANGER }, encoding: 'utf8' as const, timeout: 60_000 };
  let r;
  if (shell === 'zsh') {
    const script = path.join(work, 'banger.zsh');
    fs.writeFileSync(script, spawnSync(BANGER, ['completion', 'zsh'], { env, encoding: 'utf8' }).stdout);
    r = spawnSync('zsh', ['-f', path.join(work, 'capture.zsh'), script, line], options);
  } else if (shell === 'fish') {
    r = spawnSync('fish', ['--no-config', '-c', '$BANGER_BIN completion fish | source; complete -C "$LINE"'], options);
  } else {
    const withBc = shell === 'bash-completion' ? '1' : '0';
    r = spawnSync('bash', ['--norc', '--noprofile', '-c', BASH_DRIVER], { ...options, env: { ...options.env, WITH_BASH_COMPLETION: withBc, BASH_COMPLETION_USER_DIR: path.join(work, 'bash-completion') } });
  }
  if (r.error) throw r.error;
  // fish prints `value<TAB>description`; zsh's file completion may hand a match over twice.
  const values = [...new Set(r.stdout.split('\n').filter(Boolean).map((l) => l.split('\t')[0]!))].sort();
  return { values, status: r.status, stderr: r.stderr };
}

function assertOffers(shell: Shell, line: string, expected: string[], env?: NodeJS.ProcessEnv, bangerOnPath?: boolean): void {
  const got = complete(shell, line, env, bangerOnPath);
  const what = `${shell}: ${JSON.stringify(line)} (exit ${got.status}, stderr: ${got.stderr})`;
  // An empty answer counts only from a shell that ran the script without a complaint.
  assert.deepEqual([got.status, got.stderr], [0, ''], what);
  assert.deepEqual(got.values, [...expected].sort(), what);
}

describe('shell completion in bash, zsh and fish', { timeout: 10 * 60_000 }, () => {
  before(() => {
    assert.equal(os.userInfo().uid, 0, 'the e2e tests need root (network namespace; bangerd-root)');
    for (const shell of ['bash', 'zsh', 'fish']) {
      assert.equal(spawnSync(shell, ['-c', 'exit 0']).status, 0, `${shell} is missing: bash scripts/setup.sh --with-test-tools`);
    }
    assert.ok(fs.existsSync('/usr/share/bash-completion/bash_completion'), 'bash-completion is missing: bash scripts/setup.sh --with-test-tools');
    const add = spawnSync('ip', ['netns', 'add', NETNS], { encoding: 'utf8' });
    assert.equal(add.status, 0, `ip netns add ${NETNS}: ${add.stderr}`);
    work = fs.mkdtempSync(path.join(process.env.BANGER_E2E_DIR ?? '/var/tmp', 'banger-e2e-completion-work-'));
    fs.mkdirSync(path.join(work, 'bin'));
    fs.symlinkSync(BANGER, path.join(work, 'bin', 'banger'));
    fs.writeFileSync(path.join(work, 'capture.zsh'), ZSH_CAPTURE);
    fs.mkdirSync(path.join(work, 'bash-completion', 'completions'), { recursive: true });
    fs.writeFileSync(path.join(work, 'bash-completion', 'completions', 'banger'), live.ok(['completion', 'bash']).stdout);
    // For `vm run <TAB>`, which offers directories only.
    fs.mkdirSync(path.join(work, 'repo'));
    fs.writeFileSync(path.join(work, 'notes.txt'), '');

    // tcg: no KVM probe boots at create. No DNS server: nothing to collide with another engineer's bangerd.
    fs.mkdirSync(path.join(live.home, 'config'), { recursive: true });
    fs.writeFileSync(path.join(live.home, 'config', 'config.toml'), '[vmm]\naccel = "tcg"\n\n[dns]\nport = 0\n');
    const rootfs = path.join(work, 'root.ext4');
    fs.writeFileSync(rootfs, '');
    fs.truncateSync(rootfs, 64 * 1024 * 1024);
    const mkfs = spawnSync('mkfs.ext4', ['-q', '-F', rootfs], { encoding: 'utf8' });
    assert.equal(mkfs.status, 0, mkfs.stderr);
    live.ok(['image', 'register', IMAGE, '--rootfs', rootfs]);
    live.ok(['vm', 'create', '--no-start', '--name', VM, '--image', IMAGE]);
    assert.deepEqual(live.vmmProcesses(), [], 'vm create --no-start must not boot anything');
    kernel = (JSON.parse(live.ok(['kernel', 'list', '--json']).stdout) as Array<{ id: string }>)[0]!.id;
  });

  after(() => {
    live.teardown();
    idle.teardown();
    spawnSync('ip', ['netns', 'del', NETNS]);
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  for (const shell of ['bash', 'bash-completion', 'zsh', 'fish'] as const) {
    test(`${shell}: subcommands, enumerations and nothing after --`, () => {
      assertOffers(shell, 'banger vm st', ['start', 'stats', 'stop']);
      assertOffers(shell, 'banger vm exec --via ', ['agent', 'auto', 'ssh']);
      assertOffers(shell, 'banger vm kill --signal=T', [shell.startsWith('bash') ? 'TERM' : '--signal=TERM']);
      assertOffers(shell, 'banger completion ', ['bash', 'fish', 'zsh']);
      assertOffers(shell, `banger vm exec ${VM} -- `, []);
    });

    test(`${shell}: VM, image and kernel names from the running bangerd`, () => {
      assertOffers(shell, 'banger vm stop ', [VM]);
      assertOffers(shell, 'banger vm rm cmpl', [VM]);
      assertOffers(shell, `banger vm stop ${VM} `, []);
      assertOffers(shell, 'banger image show ', [IMAGE]);
      assertOffers(shell, 'banger kernel rm ', [kernel]);
    });

    test(`${shell}: the banger the line names, with none on PATH`, () => {
      assert.notEqual(spawnSync('sh', ['-c', 'command -v banger'], { env: { PATH: process.env.PATH } }).status, 0, 'a banger on PATH');
      assertOffers(shell, `${BANGER} vm st`, ['start', 'stats', 'stop'], live.env, false);
      assertOffers(shell, `${BANGER} vm stop `, [VM], live.env, false);
    });

    test(`${shell}: directories for vm run PATH`, () => {
      const got = complete(shell, 'banger vm run ');
      assert.deepEqual([got.status, got.stderr], [0, ''], shell);
      assert.ok(got.values.some((v) => v.includes('repo')), `${shell}: ${JSON.stringify(got)}`);
      assert.ok(!got.values.some((v) => v.includes('notes.txt')), `${shell}: ${JSON.stringify(got)}`);
    });

    test(`${shell}: with bangerd not running, no names, and the commands still`, () => {
      assertOffers(shell, 'banger vm stop ', [], idle.env);
      assertOffers(shell, 'banger vm st', ['start', 'stats', 'stop'], idle.env);
      // Nothing was started: a bangerd would have left its socket, pid file and log there.
      assert.deepEqual(fs.readdirSync(idle.home), []);
    });
  }

  test('banger __complete with bangerd not running: exit 0, no names, nothing on stderr, no daemon started', () => {
    const r = spawnSync(BANGER, ['__complete', 'vm', 'stop', ''], { env: idle.env, encoding: 'utf8', timeout: 60_000 });
    assert.deepEqual([r.status, r.stdout, r.stderr], [0, 'words\n', '']);
    assert.deepEqual(fs.readdirSync(idle.home), []);
  });

  test('banger __complete with bangerd running: the VM created there', () => {
    assert.deepEqual(live.ok(['__complete', 'vm', 'stop', '']).stdout, `words\n${VM}\n`);
  });
});
