// Pull benchmark, three ratios measured in one run (never fails on them):
//  1. `banger image pull` of an image in a local registry against `skopeo copy` + `umoci unpack` + `mkfs.ext4 -d`
//     of the same image (goal <= 1.0); a cold pull each time (fresh BANGER_HOME: no cached blobs).
//  2. `banger image pull NAME` of a catalog bundle against `curl | zstd -d | tar -x` of the same bundle
//     (goal <= 1.1); a fresh BANGER_HOME each time.
//  3. `banger vm create` of an 8 GiB image against a 1 GiB one (goal <= 1.05): the disk is a copy-on-write
//     overlay, so the image's size should not matter.
// The registry (Debian's docker-registry) and the bundle server listen on 127.0.0.1 only; VMs boot in a network
// namespace this script creates and deletes. The image is one gzip layer of real files from this host (the
// directories in BENCH_PULL_DIRS, default /usr/lib/python3.11 /usr/lib/gcc /usr/libexec /usr/share/perl).
//
// Environment: BENCH_ITERATIONS (default 3 of each), BENCH_PULL_DIRS.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { BANGER, benchHome, median } from './bench-home.ts';
import { startRegistry } from '../test/e2e/oci-registry-fixture.ts';
import { busyboxRootfsLayer, pushImage } from '../test/e2e/oci-test-images.ts';
import { freePort } from '../test/fakes/free-port.ts';

const bench = benchHome('pull', () => ['bench-small', 'bench-big']);
const { note } = bench;
const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 3);
const DIRS = (process.env.BENCH_PULL_DIRS ?? '/usr/lib/python3.11 /usr/lib/gcc /usr/libexec /usr/share/perl').split(/\s+/).filter((d) => fs.existsSync(d));
const WORK = fs.mkdtempSync(path.join('/var/tmp', 'banger-bench-pull-work-'));

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): number {
  const start = performance.now();
  const r = spawnSync(command, args, { env, encoding: 'utf8', timeout: 30 * 60_000, maxBuffer: 64 * 1024 * 1024 });
  const ms = performance.now() - start;
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return ms;
}

/** A fresh BANGER_HOME (cold caches), its daemons started before timing. */
function freshHome(label: string, extraConfig = ''): { env: NodeJS.ProcessEnv; remove(): void } {
  const home = fs.mkdtempSync(path.join('/var/tmp', `banger-bench-pull-${label}-`));
  fs.mkdirSync(path.join(home, 'config'));
  fs.writeFileSync(path.join(home, 'config', 'config.toml'), `[dns]\nport = 0\n${extraConfig}`);
  const env = { ...process.env, BANGER_HOME: home, BANGER_NETNS: bench.netns };
  run(BANGER, ['daemon', 'start'], env);
  return {
    env,
    remove: () => {
      spawnSync(BANGER, ['daemon', 'stop'], { env, encoding: 'utf8', timeout: 60_000 });
      fs.rmSync(home, { recursive: true, force: true });
    },
  };
}

function ratioLine(what: string, ours: number[], theirs: number[], goal: number): string {
  const r = median(ours) / median(theirs);
  return `${what}: banger median ${(median(ours) / 1000).toFixed(2)} s, baseline median ${(median(theirs) / 1000).toFixed(2)} s, ratio ${r.toFixed(2)} (goal <= ${goal}: ${r <= goal ? 'met' : 'NOT met'})`;
}

async function main(): Promise<void> {
  const lines: string[] = [];
  const registry = await startRegistry();
  let server: ChildProcess | null = null;
  try {
    // 1. OCI pull against skopeo + umoci + mkfs.
    note(`packing ${DIRS.join(' ')} into one gzip layer`);
    const tar = spawnSync('tar', ['-C', '/', '--numeric-owner', '-cf', '-', ...DIRS.map((d) => d.slice(1))], { maxBuffer: 4 * 1024 ** 3 }).stdout;
    const pushed = await pushImage(registry, 'bench/files', 'latest', { layers: [await busyboxRootfsLayer(), tar], config: { Cmd: ['/bin/sh'] } });
    const compressed = pushed.layers.reduce((n, l) => n + l.size, 0);
    note(`image ${pushed.ref}: ${(tar.length / 1024 ** 2).toFixed(0)} MiB of files, ${(compressed / 1024 ** 2).toFixed(0)} MiB compressed`);
    const ours: number[] = [];
    const theirs: number[] = [];
    for (let i = 0; i < ITERATIONS; i++) {
      for (const side of i % 2 === 0 ? ['ours', 'theirs'] : ['theirs', 'ours']) {
        if (side === 'ours') {
          const h = freshHome('oci');
          try {
            ours.push(run(BANGER, ['image', 'pull', pushed.ref, '--name', 'files'], h.env));
          } finally {
            h.remove();
          }
        } else {
          const dir = fs.mkdtempSync(path.join(WORK, 'skopeo-'));
          try {
            // skopeo keeps a blob-info cache under /var/lib/containers as root: a tmpfs over it in a mount namespace
            // keeps it off the host. The rootfs is unpacked and packed as root, as banger's helper does.
            theirs.push(run('unshare', ['--mount', 'sh', '-c',
              'mount -t tmpfs tmpfs /var/lib 2>/dev/null || true; ' +
              `skopeo copy --quiet --src-tls-verify=false docker://${pushed.ref} oci:${dir}/oci:latest && ` +
              `umoci unpack --image ${dir}/oci:latest ${dir}/bundle >/dev/null && ` +
              `mkfs.ext4 -q -F -d ${dir}/bundle/rootfs ${dir}/rootfs.ext4 $(( $(du -s -B1M -x ${dir}/bundle/rootfs | cut -f1) * 5 / 4 + 2048 ))M`]));
          } finally {
            fs.rmSync(dir, { recursive: true, force: true });
          }
        }
      }
    }
    lines.push(ratioLine('OCI pull vs skopeo copy + umoci unpack + mkfs.ext4 -d', ours, theirs, 1.0));

    // 2. Bundle pull against curl | zstd -d | tar -x.
    const served = path.join(WORK, 'served');
    fs.mkdirSync(served);
    const maker = freshHome('make');
    let made: { sha256: string; size: number };
    try {
      run(BANGER, ['image', 'pull', pushed.ref, '--name', 'files'], maker.env);
      const r = spawnSync(BANGER, ['image', 'make-bundle', '--from-image', 'files', '--out', path.join(served, 'files.tar.zst'), '--json'], { env: maker.env, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`make-bundle: ${r.stderr}`);
      made = JSON.parse(r.stdout) as { sha256: string; size: number };
    } finally {
      maker.remove();
    }
    const port = await freePort();
    fs.writeFileSync(path.join(served, 'catalog.json'), JSON.stringify({ schemaVersion: 1, images: [{ name: 'files', url: 'files.tar.zst', sha256: made.sha256, size: made.size }] }));
    server = spawn(process.execPath, ['-e', `
      const [dir, port] = process.argv.slice(1);
      require('node:http').createServer((req, res) => {
        const file = require('node:path').join(dir, require('node:path').basename(new URL(req.url, 'http://x').pathname));
        let size; try { size = require('node:fs').statSync(file).size; } catch { res.writeHead(404).end(); return; }
        res.writeHead(200, { 'content-length': size });
        require('node:fs').createReadStream(file).pipe(res);
      }).listen(Number(port), '127.0.0.1');`, served, String(port)], { stdio: 'ignore' });
    await new Promise((resolve) => setTimeout(resolve, 500));
    note(`bundle: ${(made.size / 1024 ** 2).toFixed(0)} MiB (zstd)`);
    const bOurs: number[] = [];
    const bTheirs: number[] = [];
    for (let i = 0; i < ITERATIONS; i++) {
      for (const side of i % 2 === 0 ? ['ours', 'theirs'] : ['theirs', 'ours']) {
        if (side === 'ours') {
          const h = freshHome('bundle', `\n[image]\ncatalog = "http://127.0.0.1:${port}/catalog.json"\n`);
          try {
            bOurs.push(run(BANGER, ['image', 'pull', 'files'], h.env));
          } finally {
            h.remove();
          }
        } else {
          const dir = fs.mkdtempSync(path.join(WORK, 'curl-'));
          try {
            bTheirs.push(run('sh', ['-c', `curl -sf http://127.0.0.1:${port}/files.tar.zst | zstd -dc | tar -x -C ${dir}`]));
          } finally {
            fs.rmSync(dir, { recursive: true, force: true });
          }
        }
      }
    }
    lines.push(ratioLine('bundle pull vs curl | zstd -d | tar -x', bOurs, bTheirs, 1.1));

    // 3. vm create of an 8 GiB image against a 1 GiB one.
    await pushImage(registry, 'bench/busybox', 'latest', { layers: [await busyboxRootfsLayer()], config: { Cmd: ['/bin/sh'] } });
    const vmHome = freshHome('vm');
    try {
      run(BANGER, ['image', 'pull', registry.ref('bench/busybox'), '--name', 'busybox'], vmHome.env);
      const pulled = (JSON.parse(spawnSync(BANGER, ['image', 'show', 'busybox', '--json'], { env: vmHome.env, encoding: 'utf8' }).stdout) as { path: string }).path;
      // The same files in a 1 GiB and an 8 GiB file system.
      for (const [name, size] of [['small', '1G'], ['big', '8G']] as const) {
        const file = path.join(WORK, `${name}.ext4`);
        run('cp', ['--sparse=always', pulled, file]);
        run('resize2fs', ['-f', file, size]);
        run(BANGER, ['image', 'register', name, '--rootfs', file], vmHome.env);
      }
      note('warm-up: vm create (imports the kernel, decides KVM or TCG)');
      run(BANGER, ['vm', 'create', '--name', 'bench-small', '--image', 'small'], vmHome.env);
      run(BANGER, ['vm', 'delete', 'bench-small'], vmHome.env);
      const small: number[] = [];
      const big: number[] = [];
      for (let i = 0; i < ITERATIONS; i++) {
        for (const side of i % 2 === 0 ? ['big', 'small'] : ['small', 'big']) {
          const name = `bench-${side}`;
          (side === 'big' ? big : small).push(run(BANGER, ['vm', 'create', '--name', name, '--image', side], vmHome.env));
          run(BANGER, ['vm', 'delete', name], vmHome.env);
        }
      }
      lines.push(ratioLine('vm create, 8 GiB image vs 1 GiB image', big, small, 1.05));
    } finally {
      vmHome.remove();
    }
  } finally {
    server?.kill('SIGKILL');
    await registry.stop();
    fs.rmSync(WORK, { recursive: true, force: true });
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

await bench.run(main);
