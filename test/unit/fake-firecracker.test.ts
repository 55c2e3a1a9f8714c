// The fake Firecracker refuses what Firecracker refuses, so the driver's tests against it can fail: requests that
// do not fit the swagger file, ids Firecracker's API rejects, and calls in the wrong phase.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { systemClock, pollUntil } from '../../src/system/clock.ts';
import { FirecrackerApi } from '../../src/vmm/firecracker/fc-api.ts';
import { installFakeFirecracker } from '../fakes/firecracker/install.ts';
import { Swagger } from '../fakes/firecracker/swagger.ts';

describe('the fake Firecracker', () => {
  let dir: string;
  let child: ChildProcess;
  let api: FirecrackerApi;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-fakefc-'));
    const fake = installFakeFirecracker(dir);
    fs.writeFileSync(path.join(dir, 'vmlinux'), 'kernel');
    const sock = path.join(dir, 'api.sock');
    child = spawn(fake.firecracker, ['--id', 'fake-test', '--api-sock', sock], { stdio: 'ignore', env: { FAKE_FC_RECORD_DIR: fake.recordDir } });
    await pollUntil(() => (fs.existsSync(sock) ? true : undefined), { clock: systemClock, timeoutMs: 10_000, intervalMs: 20 });
    api = new FirecrackerApi(sock);
  });
  after(() => {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const fault = async (method: string, urlPath: string, body?: unknown): Promise<string> => {
    const answer = await api.raw(method, urlPath, body);
    assert.equal(answer.status, 400, `${method} ${urlPath} ${JSON.stringify(body)} should be refused`);
    return (answer.body as { fault_message: string }).fault_message;
  };

  it('refuses unknown paths and methods, unknown fields, nulls, wrong types and missing fields', async () => {
    assert.match(await fault('PUT', '/nope', {}), /Invalid request method and\/or path: PUT \/nope/);
    assert.match(await fault('DELETE', '/vm'), /Invalid request method/);
    assert.match(await fault('PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 128, color: 'red' }), /unknown field `color`/);
    assert.match(await fault('PUT', '/boot-source', { kernel_image_path: '/x', initrd_path: null }), /null is not allowed/);
    assert.match(await fault('PUT', '/machine-config', { vcpu_count: '2', mem_size_mib: 128 }), /vcpu_count: invalid type, expected an integer/);
    assert.match(await fault('PUT', '/machine-config', { vcpu_count: 33, mem_size_mib: 128 }), /above the maximum 32/);
    assert.match(await fault('PUT', '/vsock', { uds_path: '/v.sock' }), /missing field `guest_cid`/);
    assert.match(await fault('PUT', '/actions', { action_type: 'Boot' }), /unknown variant "Boot"/);
    assert.match(await fault('PUT', '/logger'), /Empty PUT request/);
  });

  it('refuses drive and interface ids Firecracker refuses, and a path id that is not the body\'s', async () => {
    const drive = (id: string) => ({ drive_id: id, path_on_host: path.join(dir, 'vmlinux'), is_root_device: false, is_read_only: true });
    assert.match(await fault('PUT', '/drives/bad-id', drive('bad-id')), /alphanumeric characters and underscores/);
    assert.match(await fault('PUT', '/drives/one', drive('two')), /The id from the path does not match the id from the body/);
    assert.match(await fault('PUT', '/network-interfaces/eth0', { iface_id: 'eth1', host_dev_name: 'tap0' }), /id from the path \[eth0\] does not match/);
    assert.match(await fault('PUT', '/drives/missing', { ...drive('missing'), path_on_host: path.join(dir, 'nothing') }), /Unable to create the virtio block device/);
  });

  it('keeps pre-boot and post-boot apart, and snapshots only a paused VM', async () => {
    assert.match(await fault('PATCH', '/vm', { state: 'Paused' }), /not supported before starting the microVM/);
    assert.match(await fault('PUT', '/snapshot/create', { snapshot_path: '/s', mem_file_path: '/m' }), /not supported before starting/);
    assert.equal((await api.raw('PUT', '/boot-source', { kernel_image_path: path.join(dir, 'vmlinux') })).status, 204);
    assert.match(await fault('PUT', '/snapshot/load', { snapshot_path: '/s', mem_backend: { backend_type: 'File', backend_path: '/m' } }), /not allowed after configuring boot-specific resources/);
    assert.equal((await api.raw('PUT', '/actions', { action_type: 'InstanceStart' })).status, 204);
    assert.match(await fault('PUT', '/actions', { action_type: 'InstanceStart' }), /not supported after starting the microVM/);
    assert.match(await fault('PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 128 }), /not supported after starting/);
    const snapshot = { snapshot_path: path.join(dir, 'vm.state'), mem_file_path: path.join(dir, 'vm.mem') };
    assert.match(await fault('PUT', '/snapshot/create', snapshot), /Cannot save the microVM state/);
    assert.equal((await api.raw('PATCH', '/vm', { state: 'Paused' })).status, 204);
    assert.equal((await api.raw('PUT', '/snapshot/create', snapshot)).status, 204);
  });

  it('validates with the vendored swagger file of Firecracker 1.16.1', () => {
    const swagger = new Swagger();
    assert.equal(swagger.doc.info.version, '1.16.1');
    assert.equal(swagger.route('PUT', '/drives/root').operationId, 'putGuestDriveByID');
  });
});
