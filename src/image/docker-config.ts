// Registry credentials where `docker login` keeps them: $DOCKER_CONFIG/config.json (or ~/.docker/config.json),
// either in `auths` (base64 user:password, or username and password) or behind a credential helper
// (`credHelpers` per registry, `credsStore` for all), which is the program docker-credential-NAME answering
// `get` with the server on stdin and {"Username","Secret"} on stdout (docker's credential-helper protocol).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { BangerError } from '../protocol/errors.ts';
import type { Credentials } from './oci-registry.ts';

interface DockerConfig {
  auths?: Record<string, { auth?: unknown; username?: unknown; password?: unknown }>;
  credsStore?: unknown;
  credHelpers?: Record<string, unknown>;
}

/** Runs a credential helper's `get`: its exit status, stdout and stderr. */
export type HelperExec = (program: string, input: string) => Promise<{ code: number | null; stdout: string; stderr: string }>;

const runHelper: HelperExec = (program, input) => new Promise((resolve) => {
  const child = execFile(program, ['get'], { timeout: 30_000, maxBuffer: 64 * 1024 }, (err, stdout, stderr) => {
    const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
    resolve({ code: (err as NodeJS.ErrnoException | null)?.code === 'ENOENT' ? 127 : code, stdout, stderr });
  });
  // A helper that exits without reading (or is missing) closes stdin: that is its answer, not an error here.
  child.stdin?.on('error', () => undefined);
  child.stdin?.end(input);
});

/** The keys docker uses for a registry, Docker Hub's legacy URL first. */
function keysFor(registry: string): string[] {
  return registry === 'docker.io'
    ? ['https://index.docker.io/v1/', 'docker.io', 'index.docker.io']
    : [registry, `https://${registry}`, `http://${registry}`, `https://${registry}/v1/`, `${registry}/v1/`];
}

export function dockerConfigCredentials(file: string, exec: HelperExec = runHelper): (registry: string) => Promise<Credentials | null> {
  let config: DockerConfig = {};
  try {
    config = JSON.parse(fs.readFileSync(file, 'utf8')) as DockerConfig;
  } catch {
    // No config, or one that is not JSON: no credentials.
  }
  return async (registry) => {
    const keys = keysFor(registry);
    const named = keys.map((k) => config.credHelpers?.[k]).find((h) => typeof h === 'string') ?? config.credsStore;
    if (typeof named === 'string' && named !== '') return fromHelper(named, registry === 'docker.io' ? keys[0]! : registry, exec);
    for (const key of keys) {
      const entry = config.auths?.[key];
      if (typeof entry?.username === 'string' && typeof entry.password === 'string') return { username: entry.username, password: entry.password };
      const auth = entry?.auth;
      if (typeof auth !== 'string') continue;
      const plain = Buffer.from(auth, 'base64').toString('utf8');
      const colon = plain.indexOf(':');
      if (colon > 0) return { username: plain.slice(0, colon), password: plain.slice(colon + 1) };
    }
    return null;
  };
}

async function fromHelper(name: string, server: string, exec: HelperExec): Promise<Credentials | null> {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) {
    throw new BangerError('INVALID_ARGUMENT', `the docker config names credential helper ${JSON.stringify(name)}, which is not a helper name`, { hint: 'fix credsStore or credHelpers in ~/.docker/config.json' });
  }
  const program = `docker-credential-${name}`;
  const r = await exec(program, server);
  if (r.code === 127) {
    throw new BangerError('MISSING_TOOL', `the docker config asks for credential helper ${program}, which is not installed`, {
      hint: `install it, or remove credsStore/credHelpers from ~/.docker/config.json and run docker login again`,
    });
  }
  // The protocol's answer for a server it has nothing for.
  if (r.code !== 0 && /credentials not found/i.test(r.stdout + r.stderr)) return null;
  if (r.code !== 0) throw new BangerError('TOOL_FAILED', `${program} get failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}`, { hint: `check it by hand: echo ${server} | ${program} get` });
  let doc: { Username?: unknown; Secret?: unknown };
  try {
    doc = JSON.parse(r.stdout) as typeof doc;
  } catch {
    throw new BangerError('TOOL_FAILED', `${program} get answered something that is not JSON`, { hint: `check it by hand: echo ${server} | ${program} get` });
  }
  if (typeof doc.Secret !== 'string' || doc.Secret === '') return null;
  // An identity token (Username "<token>") is for OAuth2 refresh, which banger does not do: send it as a password.
  return { username: typeof doc.Username === 'string' ? doc.Username : '', password: doc.Secret };
}
