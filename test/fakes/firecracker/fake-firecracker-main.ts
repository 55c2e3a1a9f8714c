// A fake Firecracker process: serves Firecracker's HTTP API on --api-sock and accepts only requests that fit
// v1.16.1's swagger file (swagger.ts), in the order Firecracker accepts them: pre-boot resources before
// InstanceStart, post-boot calls after it, snapshot create only while Paused, snapshot load only on a fresh
// process. Errors are 400 with {"fault_message": ...} as Firecracker's api_server answers. Every request, and the
// process's argv, go to $FAKE_FC_RECORD_DIR/firecracker-<id>.jsonl for the tests to check. It boots nothing: its
// vsock socket answers CONNECT 52 (where banger's agent listens) with "OK <host port>" and then echoes bytes.
//
// Run under the (fake) jailer, it cannot chroot; it was started as <chroot>/firecracker with --start-time-us
// (which only the jailer passes), so it resolves the paths it is given against that directory, as a jailed
// Firecracker sees them.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { ApiFault, checkedId, Swagger } from './swagger.ts';

const VERSION = '1.16.1';
const argv = process.argv.slice(2);

function flag(name: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === `--${name}`) return argv[i + 1];
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return undefined;
}

if (argv.includes('--version')) {
  process.stdout.write(`Firecracker v${VERSION}\n\n`);
  process.exit(0);
}
const KNOWN = new Set(['id', 'api-sock', 'start-time-us', 'start-time-cpu-us', 'level', 'log-path']);
for (let i = 0; i < argv.length; i++) {
  const m = /^--([a-z-]+)(=.*)?$/.exec(argv[i]!);
  if (!m || !KNOWN.has(m[1]!)) {
    process.stderr.write(`fake firecracker: unknown argument ${argv[i]}\n`);
    process.exit(1);
  }
  if (!m[2]) i++;
}

const id = flag('id') ?? 'anonymous-instance';
// Node names its main thread "MainThread"; the real binary's process is named after its file, and that name is
// what banger checks before it trusts a pid. The command line (with --id) is left as it was.
fs.writeFileSync('/proc/self/comm', path.basename(process.argv[1]!).slice(0, 15));
const jailed = flag('start-time-us') !== undefined;
const root = jailed ? path.dirname(process.argv[1]!) : '/';
const inRoot = (p: string): string => (jailed ? path.join(root, p) : p);
const recordFile = process.env.FAKE_FC_RECORD_DIR ? path.join(process.env.FAKE_FC_RECORD_DIR, `firecracker-${id}.jsonl`) : null;
const record = (entry: Record<string, unknown>): void => {
  if (recordFile) fs.appendFileSync(recordFile, `${JSON.stringify(entry)}\n`);
};
record({ event: 'start', pid: process.pid, argv, jailed, root });

const swagger = new Swagger();

type State = 'Not started' | 'Running' | 'Paused';
interface Config {
  bootSource?: Record<string, unknown>;
  machine?: Record<string, unknown>;
  drives: Record<string, Record<string, unknown>>;
  nets: Record<string, Record<string, unknown>>;
  vsock?: Record<string, unknown>;
}
let state: State = 'Not started';
/** Whether a boot-specific resource was configured: snapshot load is refused afterwards (rpc_interface.rs). */
let bootPath = false;
let config: Config = { drives: {}, nets: {} };
let vsockServer: net.Server | null = null;

const PRE_BOOT = new Set(['putGuestBootSource', 'putGuestDriveByID', 'putGuestNetworkInterfaceByID', 'putMachineConfiguration', 'patchMachineConfiguration',
  'putGuestVsock', 'putLogger', 'putMetrics', 'putSerialDevice', 'putBalloon', 'putMmdsConfig', 'putEntropyDevice', 'putCpuConfiguration', 'loadSnapshot',
  'putMemoryHotplug', 'putGuestPmemByID']);
const POST_BOOT = new Set(['patchVm', 'createSnapshot', 'patchGuestDriveByID', 'patchGuestNetworkInterfaceByID', 'patchGuestPmemByID', 'patchBalloon',
  'patchBalloonStatsInterval', 'describeBalloonStats', 'patchMemoryHotplug', 'getMemoryHotplug', 'startBalloonHinting', 'describeBalloonHinting', 'stopBalloonHinting']);
const BOOT_PATH = new Set(['putGuestBootSource', 'putGuestDriveByID', 'putGuestNetworkInterfaceByID', 'putMachineConfiguration', 'patchMachineConfiguration',
  'putGuestVsock', 'putBalloon', 'putMmdsConfig', 'putEntropyDevice', 'putMemoryHotplug', 'putGuestPmemByID']);

const notAfterBoot = (): ApiFault => new ApiFault(400, 'The requested operation is not supported after starting the microVM.');
const notBeforeBoot = (): ApiFault => new ApiFault(400, 'The requested operation is not supported before starting the microVM.');

function mustOpen(p: string, mode: number, what: string): void {
  try {
    fs.accessSync(inRoot(p), mode);
  } catch (err) {
    throw new ApiFault(400, `${what}: ${(err as Error).message}`);
  }
}

function listenVsock(udsPath: string): void {
  const host = inRoot(udsPath);
  if (fs.existsSync(host)) throw new ApiFault(400, `Vsock config error: Cannot create backend for vsock device: UnixBind(Os { code: 98, kind: AddrInUse })`);
  let nextHostPort = 1073741824;
  vsockServer?.close();
  vsockServer = net.createServer((s) => {
    let got = '';
    const onData = (c: Buffer): void => {
      got += c.toString('latin1');
      const nl = got.indexOf('\n');
      if (nl < 0) return;
      s.removeListener('data', onData);
      const m = /^CONNECT (\d+)$/.exec(got.slice(0, nl));
      // Nothing runs in this guest but "the agent" on port 52, and only while the guest runs.
      if (!m || Number(m[1]) !== 52 || state !== 'Running') return void s.destroy();
      record({ event: 'vsock-connect', port: Number(m[1]) });
      s.write(`OK ${nextHostPort++}\n`);
      const rest = got.slice(nl + 1);
      if (rest) s.write(rest);
      s.pipe(s);
    };
    s.on('data', onData);
    s.on('error', () => undefined);
  });
  vsockServer.listen(host);
}

function handle(op: string, params: Record<string, string>, body: Record<string, unknown> | undefined): { status: number; json?: unknown } {
  if (PRE_BOOT.has(op) && state !== 'Not started') throw notAfterBoot();
  if (POST_BOOT.has(op) && state === 'Not started') throw notBeforeBoot();
  const b = body ?? {};
  const idFromPath = Object.values(params)[0];
  if (idFromPath !== undefined) checkedId(idFromPath);
  switch (op) {
    case 'describeInstance':
      return { status: 200, json: { app_name: 'Firecracker', id, state, vmm_version: VERSION } };
    case 'getFirecrackerVersion':
      return { status: 200, json: { firecracker_version: VERSION } };
    case 'getMachineConfiguration':
      return { status: 200, json: config.machine ?? { vcpu_count: 1, mem_size_mib: 128, smt: false, track_dirty_pages: false } };
    case 'getExportVmConfig':
      return { status: 200, json: { 'boot-source': config.bootSource, 'machine-config': config.machine, drives: Object.values(config.drives), 'network-interfaces': Object.values(config.nets), vsock: config.vsock } };
    case 'putGuestBootSource':
      mustOpen(String(b.kernel_image_path), fs.constants.R_OK, 'Boot source error: The kernel file cannot be opened');
      if (b.initrd_path !== undefined) mustOpen(String(b.initrd_path), fs.constants.R_OK, 'Boot source error: The initrd file cannot be opened');
      config.bootSource = b;
      break;
    case 'putGuestDriveByID':
      if (b.drive_id !== idFromPath) throw new ApiFault(400, 'The id from the path does not match the id from the body!');
      mustOpen(String(b.path_on_host), fs.constants.R_OK | (b.is_read_only === true ? 0 : fs.constants.W_OK), 'Drive config error: Unable to create the virtio block device');
      config.drives[idFromPath!] = b;
      break;
    case 'putGuestNetworkInterfaceByID':
      if (b.iface_id !== idFromPath) throw new ApiFault(400, `The id from the path [${idFromPath}] does not match the id from the body [${String(b.iface_id)}]!`);
      config.nets[idFromPath!] = b;
      break;
    case 'putMachineConfiguration':
      config.machine = b;
      break;
    case 'putLogger':
      if (b.log_path !== undefined) mustOpen(String(b.log_path), fs.constants.W_OK, 'Logger error: Failed to open target file');
      break;
    case 'putMetrics':
      mustOpen(String(b.metrics_path), fs.constants.W_OK, 'Metrics error: Cannot initialize the metrics system');
      break;
    case 'putSerialDevice':
      if (b.serial_out_path !== undefined) mustOpen(String(b.serial_out_path), fs.constants.W_OK, 'Cannot open the serial output file');
      break;
    case 'putGuestVsock':
      listenVsock(String(b.uds_path));
      config.vsock = b;
      break;
    case 'createSyncAction':
      if (b.action_type === 'InstanceStart') {
        if (state !== 'Not started') throw notAfterBoot();
        if (!config.bootSource) throw new ApiFault(400, 'Start microvm error: Cannot start microvm without kernel configuration.');
        state = 'Running';
      } else if (state === 'Not started') throw notBeforeBoot();
      break;
    case 'patchVm':
      state = b.state === 'Paused' ? 'Paused' : 'Running';
      break;
    case 'createSnapshot': {
      if (state !== 'Paused') throw new ApiFault(400, 'Create snapshot error: Cannot save the microVM state: Vcpu is in unexpected state (save/restore unavailable while running)');
      const snapshot = inRoot(String(b.snapshot_path));
      const mem = inRoot(String(b.mem_file_path));
      for (const f of [snapshot, mem]) if (!fs.existsSync(path.dirname(f))) throw new ApiFault(400, `Create snapshot error: Cannot perform open on the snapshot backing file: No such file or directory (os error 2)`);
      fs.writeFileSync(snapshot, JSON.stringify({ fake: 'fake-firecracker-snapshot', version: VERSION, config }));
      fs.writeFileSync(mem, `guest memory of ${id}\n`);
      break;
    }
    case 'loadSnapshot': {
      if (bootPath) throw new ApiFault(400, 'Load snapshot error: Loading a microVM snapshot not allowed after configuring boot-specific resources.');
      if ((b.mem_file_path === undefined) === (b.mem_backend === undefined)) {
        throw new ApiFault(400, 'An error occurred when deserializing the json body of a request: either mem_backend or mem_file_path must be specified.');
      }
      const memPath = String(b.mem_file_path ?? (b.mem_backend as { backend_path: string }).backend_path);
      let saved: { fake?: string; config?: Config };
      try {
        saved = JSON.parse(fs.readFileSync(inRoot(String(b.snapshot_path)), 'utf8')) as typeof saved;
        fs.accessSync(inRoot(memPath), fs.constants.R_OK);
      } catch (err) {
        throw new ApiFault(400, `Load snapshot error: Failed to restore from snapshot: ${(err as Error).message}`);
      }
      if (saved.fake !== 'fake-firecracker-snapshot' || !saved.config) throw new ApiFault(400, 'Load snapshot error: Failed to restore from snapshot: not a snapshot');
      config = saved.config;
      for (const override of (b.network_overrides as Array<{ iface_id: string; host_dev_name: string }> | undefined) ?? []) {
        const iface = config.nets[override.iface_id];
        if (!iface) throw new ApiFault(400, `Load snapshot error: Failed to restore from snapshot: no network interface ${override.iface_id}`);
        iface.host_dev_name = override.host_dev_name;
      }
      const uds = (b.vsock_override as { uds_path: string } | undefined)?.uds_path ?? (config.vsock?.uds_path as string | undefined);
      if (uds !== undefined) {
        listenVsock(uds);
        config.vsock = { ...config.vsock, uds_path: uds };
      }
      state = b.resume_vm === true ? 'Running' : 'Paused';
      break;
    }
    default:
      // Validated against the swagger file and in the right phase; nothing more is modelled.
      break;
  }
  if (BOOT_PATH.has(op)) bootPath = true;
  return { status: 204 };
}

const apiSock = inRoot(flag('api-sock') ?? '/run/firecracker.socket');
const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const method = req.method ?? 'GET';
    const urlPath = (req.url ?? '/').split('?')[0]!;
    const raw = Buffer.concat(chunks).toString('utf8');
    let parsed: unknown;
    let status = 500;
    let answer: unknown;
    try {
      const route = swagger.route(method, urlPath);
      if (raw !== '') {
        try {
          parsed = JSON.parse(raw);
        } catch (err) {
          throw new ApiFault(400, `An error occurred when deserializing the json body of a request: ${(err as Error).message}.`);
        }
      }
      swagger.checkBody(route, method, parsed);
      ({ status, json: answer } = handle(route.operationId, route.params, parsed as Record<string, unknown> | undefined));
    } catch (err) {
      if (!(err instanceof ApiFault)) throw err;
      status = err.status;
      answer = { fault_message: err.message };
    }
    record({ event: 'request', method, path: urlPath, body: parsed ?? null, status, ...(status >= 400 ? { fault: (answer as { fault_message: string }).fault_message } : {}) });
    if (answer === undefined) res.writeHead(status).end();
    else res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  });
});
server.on('error', (err) => {
  record({ event: 'api-socket-error', message: err.message });
  process.exit(1);
});
if (fs.existsSync(apiSock)) {
  record({ event: 'api-socket-error', message: `${apiSock} exists` });
  process.stderr.write(`fake firecracker: failed to open the API socket ${apiSock}: Address in use\n`);
  process.exit(1);
}
server.listen(apiSock);
