// Puts the fake Firecracker and fake jailer in a directory as executables named `firecracker` and `jailer`, the
// way a test points firecracker_bin / jailer_bin at them, and reads back what they recorded.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

export interface FakeFirecrackerInstall {
  firecracker: string;
  jailer: string;
  /** Where both record (set as FAKE_FC_RECORD_DIR for the processes). */
  recordDir: string;
}

/**
 * Writes the two wrappers into `dir`: scripts run by this Node (which strips the types of the .ts they import).
 * The kernel names a script's process after the script, so /proc/PID/comm reads "firecracker" as it would for
 * the real binary.
 */
export function installFakeFirecracker(dir: string): FakeFirecrackerInstall {
  fs.mkdirSync(dir, { recursive: true });
  const recordDir = path.join(dir, 'records');
  fs.mkdirSync(recordDir, { recursive: true });
  const wrap = (name: string, main: string): string => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, `#!${process.execPath}\nimport(${JSON.stringify(pathToFileURL(path.join(here, main)).href)});\n`, { mode: 0o755 });
    return file;
  };
  return { firecracker: wrap('firecracker', 'fake-firecracker-main.ts'), jailer: wrap('jailer', 'fake-jailer-main.ts'), recordDir };
}

export interface RecordedRequest {
  event: 'request';
  method: string;
  path: string;
  body: unknown;
  status: number;
  fault?: string;
}

function readJsonl(file: string): Array<Record<string, unknown>> {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** What the fake Firecracker of instance `id` recorded: its start(s), requests and vsock connections. */
export function firecrackerRecords(recordDir: string, id: string): Array<Record<string, unknown>> {
  return readJsonl(path.join(recordDir, `firecracker-${id}.jsonl`));
}

export function requestsOf(recordDir: string, id: string): RecordedRequest[] {
  return firecrackerRecords(recordDir, id).filter((r) => r.event === 'request') as unknown as RecordedRequest[];
}

/** What the fake jailer was asked for, per launch of instance `id`. */
export function jailerRecords(recordDir: string, id: string): Array<Record<string, unknown>> {
  return readJsonl(path.join(recordDir, `jailer-${id}.jsonl`));
}
