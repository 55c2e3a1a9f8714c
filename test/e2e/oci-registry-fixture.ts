// A real OCI registry for e2e tests of `banger image pull`: Debian's docker-registry (distribution 2.8) on
// 127.0.0.1 with its storage in a temp dir, anonymous, with basic auth (htpasswd), or with bearer tokens from a
// token server this file runs. Images are pushed over the registry's own HTTP API (see oci-test-images.ts), and
// a test can tamper with a stored blob afterwards, since the registry checks digests only on upload.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, randomUUID, sign, X509Certificate, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { withDeathSignal } from '../../src/system/dies-with-parent.ts';
import { freePort } from '../fakes/free-port.ts';

export type RegistryAuth = 'none' | 'basic' | 'token';

/** The one account of an authenticated test registry. */
export const REGISTRY_USER = 'banger';
export const REGISTRY_PASSWORD = 's3cret';
// bcrypt (cost 4, so the registry checks it fast) of REGISTRY_PASSWORD; made once, as nothing here makes bcrypt.
const HTPASSWD = `${REGISTRY_USER}:$2b$04$Tvystan3unH2302KFkVc4uEHMmZLb.x.bh9N4AWw9olkj.w.rvj.G\n`;
const REGISTRY_BINARY = '/usr/bin/docker-registry';
const TOKEN_SERVICE = 'banger-test-registry';
const TOKEN_ISSUER = 'banger-test-issuer';

export interface StartRegistryOptions {
  /** none (the default): anyone pulls and pushes; basic: htpasswd; token: bearer tokens from a token server. */
  auth?: RegistryAuth;
  /** With token auth, whether a token asked for without credentials may pull (as for a public repository). */
  anonymousPull?: boolean;
}

/** What the token server was asked: each request's scopes and whether it carried basic credentials. */
export interface TokenRequest {
  scopes: string[];
  service: string | null;
  /** `banger` when the request had the right credentials, `anonymous` with none, `refused` with wrong ones. */
  as: 'banger' | 'anonymous' | 'refused';
}

export interface TestRegistry {
  /** `127.0.0.1:PORT`, the registry part of an image reference. */
  host: string;
  auth: RegistryAuth;
  /** The temp dir holding config, storage, htpasswd and token keys; removed by stop(). */
  dir: string;
  /** The registry's storage root (docker/registry/v2/… below it). */
  storageDir: string;
  /** The token server's requests so far (token auth only; empty otherwise). */
  tokenRequests: TokenRequest[];
  /** `host/repo:tag` */
  ref(repo: string, tag?: string): string;
  /** Uploads a blob (monolithic: POST, then PUT with the digest) and returns its digest. */
  pushBlob(repo: string, data: Buffer): Promise<string>;
  /** Puts a manifest or index under `reference` (a tag) and returns its digest. */
  pushManifest(repo: string, reference: string, mediaType: string, body: Buffer): Promise<string>;
  /** The file the registry serves blob `digest` from; overwrite or truncate it to serve bad bytes. */
  blobDataPath(digest: string): string;
  /**
   * A directory for DOCKER_CONFIG whose config.json holds `auth` for this registry (the right credentials, or
   * the ones given); it is inside dir, so stop() removes it.
   */
  dockerConfigDir(credentials?: { username: string; password: string }): string;
  /** Kills the registry (and the token server), waits for them, and removes dir. */
  stop(): Promise<void>;
}

/** Starts docker-registry on a free loopback port and waits until it answers GET /v2/. */
export async function startRegistry(options: StartRegistryOptions = {}): Promise<TestRegistry> {
  const auth = options.auth ?? 'none';
  if (!fs.existsSync(REGISTRY_BINARY)) throw new Error(`${REGISTRY_BINARY} is missing: install Debian's docker-registry package`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-registry-'));
  const storageDir = path.join(dir, 'storage');
  let tokens: TokenServer | null = null;
  let child: ChildProcess | null = null;
  try {
    fs.mkdirSync(storageDir);
    let authConfig = '';
    if (auth === 'basic') {
      fs.writeFileSync(path.join(dir, 'htpasswd'), HTPASSWD);
      authConfig = `auth: {htpasswd: {realm: banger-test, path: ${path.join(dir, 'htpasswd')}}}\n`;
    } else if (auth === 'token') {
      tokens = await startTokenServer(dir, options.anonymousPull ?? false);
      authConfig = `auth: {token: {realm: "http://127.0.0.1:${tokens.port}/token", service: ${TOKEN_SERVICE}, issuer: ${TOKEN_ISSUER}, rootcertbundle: ${tokens.certFile}}}\n`;
    }
    // freePort releases the port before the registry binds it; another process may take it in between, so a
    // registry that exits at once is started again on another port.
    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      fs.writeFileSync(path.join(dir, 'config.yml'), [
        'version: 0.1',
        'log: {level: warn, accesslog: {disabled: true}}',
        `storage: {filesystem: {rootdirectory: ${storageDir}}, delete: {enabled: true}}`,
        `http: {addr: "127.0.0.1:${port}", secret: banger-test-secret}`,
        authConfig,
      ].join('\n'));
      // With SIGKILL as its parent-death signal, a test process that is killed takes its registry with it.
      const [program, ...args] = withDeathSignal(REGISTRY_BINARY, ['serve', path.join(dir, 'config.yml')]);
      child = spawn(program!, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      const started = await waitUntilUp(child, port);
      if (started === true) break;
      if (attempt >= 3 || !/address already in use/.test(started)) throw new Error(`docker-registry did not start: ${started}`);
    }
    return registryHandle({ host: `127.0.0.1:${port}`, auth, dir, storageDir, child: child!, tokens });
  } catch (err) {
    if (child) await killAndWait(child);
    await tokens?.close();
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** true once GET /v2/ answers (200, or 401 behind auth); the registry's stderr when it exited first. */
async function waitUntilUp(child: ChildProcess, port: number): Promise<true | string> {
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { if (stderr.length < 64 * 1024) stderr += s; });
  const exited = new Promise<string>((resolve) => {
    child.once('error', (err) => resolve(err.message));
    child.once('exit', (code, signal) => resolve(`exit ${code ?? signal}: ${stderr.trim()}`));
  });
  let ended: string | null = null;
  void exited.then((why) => { ended = why; });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (ended !== null) return ended;
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      if (res.status === 200 || res.status === 401) return true;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await killAndWait(child);
  return `no answer on 127.0.0.1:${port}/v2/ within 10 s: ${stderr.trim()}`;
}

function registryHandle(r: { host: string; auth: RegistryAuth; dir: string; storageDir: string; child: ChildProcess; tokens: TokenServer | null }): TestRegistry {
  const base = `http://${r.host}`;
  const basic = `Basic ${Buffer.from(`${REGISTRY_USER}:${REGISTRY_PASSWORD}`).toString('base64')}`;
  // Pushes authenticate without a challenge round trip: basic credentials, or a token minted here.
  const authorization = (repo: string): Record<string, string> => {
    if (r.auth === 'basic') return { authorization: basic };
    if (r.tokens) return { authorization: `Bearer ${r.tokens.mint([{ type: 'repository', name: repo, actions: ['pull', 'push'] }])}` };
    return {};
  };
  const expectStatus = async (res: Response, want: number, what: string): Promise<void> => {
    if (res.status === want) return;
    throw new Error(`${what}: HTTP ${res.status} from the test registry: ${(await res.text()).slice(0, 500)}`);
  };
  let stopped: Promise<void> | null = null;
  return {
    host: r.host,
    auth: r.auth,
    dir: r.dir,
    storageDir: r.storageDir,
    tokenRequests: r.tokens?.requests ?? [],
    ref: (repo, tag = 'latest') => `${r.host}/${repo}:${tag}`,
    async pushBlob(repo, data) {
      const digest = sha256(data);
      const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: authorization(repo) });
      await expectStatus(start, 202, `starting an upload to ${repo}`);
      const location = new URL(start.headers.get('location') ?? '', base);
      // The registry builds Location from the Host it was sent; anything else would leave loopback.
      if (location.host !== r.host) throw new Error(`the test registry sent the upload to ${location.href}`);
      location.searchParams.set('digest', digest);
      const put = await fetch(location, {
        method: 'PUT', body: new Uint8Array(data), headers: { ...authorization(repo), 'content-type': 'application/octet-stream' },
      });
      await expectStatus(put, 201, `uploading ${digest} to ${repo}`);
      return digest;
    },
    async pushManifest(repo, reference, mediaType, body) {
      const res = await fetch(`${base}/v2/${repo}/manifests/${reference}`, {
        method: 'PUT', body: new Uint8Array(body), headers: { ...authorization(repo), 'content-type': mediaType },
      });
      await expectStatus(res, 201, `putting the manifest ${repo}:${reference}`);
      return sha256(body);
    },
    blobDataPath(digest) {
      const m = /^sha256:([a-f0-9]{64})$/.exec(digest);
      if (!m) throw new Error(`not a sha256 digest: ${digest}`);
      return path.join(r.storageDir, 'docker/registry/v2/blobs/sha256', m[1]!.slice(0, 2), m[1]!, 'data');
    },
    dockerConfigDir(credentials = { username: REGISTRY_USER, password: REGISTRY_PASSWORD }) {
      const configDir = fs.mkdtempSync(path.join(r.dir, 'docker-config-'));
      const auth = Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64');
      fs.writeFileSync(path.join(configDir, 'config.json'), `${JSON.stringify({ auths: { [r.host]: { auth } } }, null, 2)}\n`, { mode: 0o600 });
      return configDir;
    },
    stop() {
      stopped ??= (async () => {
        await killAndWait(r.child);
        await r.tokens?.close();
        fs.rmSync(r.dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

/** SIGKILL and wait for the exit (SIGTERM would have the registry drain for about 2 s). */
async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

interface TokenAccess {
  type: string;
  name: string;
  actions: string[];
}

interface TokenServer {
  port: number;
  certFile: string;
  requests: TokenRequest[];
  /** A token for `access`, signed as the token server signs them. */
  mint(access: TokenAccess[]): string;
  close(): Promise<void>;
}

/**
 * The token service of the distribution spec, as registries with bearer auth run beside them: GET
 * /token?service=…&scope=repository:NAME:ACTIONS answers `{token}`, an ES256 JWT whose x5c certificate is the
 * registry's rootcertbundle. The right basic credentials get the scopes asked for, none get pull (when
 * anonymousPull) or nothing (and the registry then answers 401), wrong ones get a 401 here.
 */
async function startTokenServer(dir: string, anonymousPull: boolean): Promise<TokenServer> {
  const keyFile = path.join(dir, 'token.key');
  const certFile = path.join(dir, 'token.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile,
    '-days', '2', '-subj', '/CN=banger-test-token'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const key: KeyObject = createPrivateKey(fs.readFileSync(keyFile));
  const certDer = new X509Certificate(fs.readFileSync(certFile)).raw.toString('base64');
  const b64url = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  const mint = (access: TokenAccess[], subject = REGISTRY_USER): string => {
    const now = Math.floor(Date.now() / 1000);
    const input = `${b64url({ alg: 'ES256', typ: 'JWT', x5c: [certDer] })}.${b64url({
      iss: TOKEN_ISSUER, sub: subject, aud: TOKEN_SERVICE, exp: now + 300, nbf: now - 10, iat: now, jti: randomUUID(), access,
    })}`;
    // JWS wants the raw r||s signature, not DER.
    const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${signature.toString('base64url')}`;
  };
  const requests: TokenRequest[] = [];
  const expected = `Basic ${Buffer.from(`${REGISTRY_USER}:${REGISTRY_PASSWORD}`).toString('base64')}`;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const scopes = url.searchParams.getAll('scope');
    const header = req.headers.authorization;
    const as: TokenRequest['as'] = header === undefined ? 'anonymous' : header === expected ? 'banger' : 'refused';
    requests.push({ scopes, service: url.searchParams.get('service'), as });
    if (url.pathname !== '/token') {
      res.writeHead(404).end();
      return;
    }
    if (as === 'refused') {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="banger-test-token"' });
      res.end(JSON.stringify({ details: 'wrong user name or password' }));
      return;
    }
    const access: TokenAccess[] = [];
    for (const scope of scopes) {
      // repository:NAME:ACTIONS, where NAME has no colon here but ACTIONS may be a comma list.
      const [type, name, actions] = scope.split(':');
      if (!type || !name || actions === undefined) continue;
      const granted = as === 'banger' ? actions.split(',') : anonymousPull ? actions.split(',').filter((a) => a === 'pull') : [];
      if (granted.length > 0) access.push({ type, name, actions: granted });
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token: mint(access, as === 'banger' ? REGISTRY_USER : ''), expires_in: 300, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    certFile,
    requests,
    mint,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
