// A registry on loopback serving one repository as the distribution API does (anonymous): manifests by tag or
// digest with their content type and digest header, blobs by digest. Counts blob requests, so tests can see
// what a pull downloaded.
import { createHash } from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import { MEDIA, type Descriptor } from '../../src/image/oci-registry.ts';

export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export class FakeRegistry {
  readonly blobRequests: string[] = [];
  private readonly blobs = new Map<string, Buffer>();
  private readonly manifests = new Map<string, Buffer>();
  private readonly tags = new Map<string, string>();
  private server: http.Server | null = null;
  host = '';
  readonly repository: string;

  constructor(repository: string) {
    this.repository = repository;
  }

  blob(bytes: Buffer, mediaType: string): Descriptor {
    const digest = sha256(bytes);
    this.blobs.set(digest, bytes);
    return { mediaType, digest, size: bytes.length };
  }

  /** An image manifest with `config` (JSON) and `layers`, tagged `tag`. */
  image(tag: string, config: unknown, layers: Descriptor[]): string {
    const configBytes = Buffer.from(JSON.stringify(config));
    const body = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: MEDIA.ociManifest, config: this.blob(configBytes, 'application/vnd.oci.image.config.v1+json'), layers,
    }));
    const digest = sha256(body);
    this.manifests.set(digest, body);
    this.tags.set(tag, digest);
    return digest;
  }

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const m = new RegExp(`^/v2/${this.repository}/(manifests|blobs)/(.+)$`).exec(new URL(req.url!, 'http://x').pathname);
      if (!m) return void res.writeHead(404).end();
      if (m[1] === 'manifests') {
        const digest = this.tags.get(m[2]!) ?? m[2]!;
        const body = this.manifests.get(digest);
        if (!body) return void res.writeHead(404).end();
        return void res.writeHead(200, { 'content-type': MEDIA.ociManifest, 'docker-content-digest': digest }).end(body);
      }
      this.blobRequests.push(m[2]!);
      const blob = this.blobs.get(m[2]!);
      if (!blob) return void res.writeHead(404).end();
      res.writeHead(200).end(blob);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.host = `127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  close(): void {
    this.server?.close();
  }
}
