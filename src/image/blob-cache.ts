// The cache of verified OCI blobs: blobs/sha256/HEX, each file named by the digest its bytes were checked
// against. Downloads in progress are HEX.partial and never count as cached.
import fs from 'node:fs';
import path from 'node:path';

export interface CachedBlob {
  digest: string;
  sizeBytes: number;
  file: string;
}

function blobsDir(cacheDir: string): string {
  return path.join(cacheDir, 'blobs', 'sha256');
}

export function listBlobs(cacheDir: string): CachedBlob[] {
  let names: string[];
  try {
    names = fs.readdirSync(blobsDir(cacheDir));
  } catch {
    return [];
  }
  return names.filter((n) => /^[a-f0-9]{64}$/.test(n)).sort().map((n) => {
    const file = path.join(blobsDir(cacheDir), n);
    return { digest: `sha256:${n}`, sizeBytes: fs.statSync(file).size, file };
  });
}

/** Removes downloads that never finished (a crash or a kill mid-download); returns how many. */
export function removePartialBlobs(cacheDir: string): number {
  let names: string[];
  try {
    names = fs.readdirSync(blobsDir(cacheDir));
  } catch {
    return 0;
  }
  const partial = names.filter((n) => n.endsWith('.partial'));
  for (const n of partial) fs.rmSync(path.join(blobsDir(cacheDir), n), { force: true });
  return partial.length;
}
