import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { pathsProblem, resolvePaths, type BangerPaths } from '../../src/system/paths.ts';

function pathValues(p: BangerPaths): Array<[string, string]> {
  return Object.entries(p).filter((e): e is [string, string] => e[0] !== 'home' && typeof e[1] === 'string');
}

describe('resolvePaths', () => {
  it('puts every path under BANGER_HOME when it is set', () => {
    const p = resolvePaths({ BANGER_HOME: '/srv/bh', HOME: '/home/u', XDG_STATE_HOME: '/xdg/state', XDG_RUNTIME_DIR: '/run/user/1000' }, 1000);
    assert.equal(p.home, '/srv/bh');
    const values = pathValues(p);
    assert.equal(values.length, 16);
    for (const [key, value] of values) assert.ok(value.startsWith('/srv/bh/'), `${key} = ${value}`);
    assert.equal(p.configFile, '/srv/bh/config/config.toml');
    assert.equal(p.daemonSocket, '/srv/bh/run/bangerd.sock');
    assert.equal(p.helperSocket, '/srv/bh/run/bangerd-root.sock');
    assert.equal(p.db, '/srv/bh/state/banger.db');
    assert.equal(p.imagesDir, '/srv/bh/cache/images');
    assert.equal(p.blobCacheDir, '/srv/bh/cache/oci');
  });

  it('makes a relative BANGER_HOME absolute', () => {
    const p = resolvePaths({ BANGER_HOME: 'rel/home' }, 1000);
    assert.equal(p.home, path.resolve('rel/home'));
    for (const [key, value] of pathValues(p)) assert.ok(path.isAbsolute(value) && value.startsWith(`${p.home}/`), `${key} = ${value}`);
  });

  it('uses the XDG directories without BANGER_HOME', () => {
    const p = resolvePaths({
      HOME: '/home/u',
      XDG_CONFIG_HOME: '/xdg/config',
      XDG_STATE_HOME: '/xdg/state',
      XDG_CACHE_HOME: '/xdg/cache',
      XDG_RUNTIME_DIR: '/run/user/1000',
    }, 1000);
    assert.equal(p.home, null);
    assert.equal(p.configFile, '/xdg/config/banger/config.toml');
    assert.equal(p.stateDir, '/xdg/state/banger');
    assert.equal(p.db, '/xdg/state/banger/banger.db');
    assert.equal(p.vmsDir, '/xdg/state/banger/vms');
    assert.equal(p.sshDir, '/xdg/state/banger/ssh');
    assert.equal(p.logDir, '/xdg/state/banger/logs');
    assert.equal(p.cacheDir, '/xdg/cache/banger');
    assert.equal(p.kernelsDir, '/xdg/cache/banger/kernels');
    // Not the session's runtime dir: a daemon systemd started has none, and the CLI must find its socket.
    assert.equal(p.runDir, '/xdg/state/banger/run');
    assert.equal(p.daemonSocket, '/xdg/state/banger/run/bangerd.sock');
  });

  it('falls back to ~/.config, ~/.local/state and ~/.cache', () => {
    const p = resolvePaths({ HOME: '/home/u' }, 1000);
    assert.equal(p.configFile, '/home/u/.config/banger/config.toml');
    assert.equal(p.stateDir, '/home/u/.local/state/banger');
    assert.equal(p.cacheDir, '/home/u/.cache/banger');
  });

  it('puts sockets in /run/banger for root and under the state dir otherwise, session or not', () => {
    assert.equal(resolvePaths({ HOME: '/root' }, 0).runDir, '/run/banger');
    assert.equal(resolvePaths({ HOME: '/home/u' }, 1000).runDir, '/home/u/.local/state/banger/run');
  });
});

describe('pathsProblem', () => {
  it('accepts ordinary homes', () => {
    assert.equal(pathsProblem(resolvePaths({ HOME: '/home/alice' }, 1000)), null);
    assert.equal(pathsProblem(resolvePaths({ BANGER_HOME: '/var/tmp/banger-e2e-12345' }, 0)), null);
  });

  for (const home of ['/home/a b', '/srv/a,b', '/srv/100%', '/srv/"q"', "/srv/it's", '/srv/tab\there']) {
    it(`refuses ${JSON.stringify(home)}, naming the character`, () => {
      assert.match(pathsProblem(resolvePaths({ BANGER_HOME: home }, 0)) ?? '', /contains .* which QEMU and ssh options cannot carry/);
    });
  }

  it('refuses a home so deep that the VM sockets would not fit in a socket address', () => {
    const deep = `/srv/${'d'.repeat(60)}`;
    assert.match(pathsProblem(resolvePaths({ BANGER_HOME: deep }, 0)) ?? '', /too long for the Unix sockets/);
    assert.equal(pathsProblem(resolvePaths({ BANGER_HOME: `/srv/${'d'.repeat(40)}` }, 0)), null);
  });
});
