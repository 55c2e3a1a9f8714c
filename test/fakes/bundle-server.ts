// An HTTP server on 127.0.0.1 serving bundles the way a test asks: with or without Content-Length, cut off and
// left hanging, redirecting elsewhere, or answering some other status. Records every request path, so a test can
// see that nothing was asked for.
import http from 'node:http';
import type net from 'node:net';

export interface BundleRoute {
  status?: number;
  /** Bytes sent as the body (all of them, even past a Content-Length the route declares). */
  body?: Buffer;
  /** The Content-Length header: the body's length by default, another number, or 'none' for chunked. */
  contentLength?: number | 'none';
  /** Sends the headers and the body, then leaves the response open instead of ending it. */
  hang?: boolean;
  location?: string;
}

export class BundleServer {
  readonly requests: string[] = [];
  private readonly routes = new Map<string, BundleRoute>();
  private server: http.Server | null = null;
  origin = '';

  /** Serves `route` at `pathname`; returns its URL. */
  route(pathname: string, route: BundleRoute): string {
    this.routes.set(pathname, route);
    return `${this.origin}${pathname}`;
  }

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const pathname = new URL(req.url!, 'http://x').pathname;
      this.requests.push(pathname);
      const route = this.routes.get(pathname);
      if (!route) return void res.writeHead(404).end();
      const body = route.body ?? Buffer.alloc(0);
      const headers: Record<string, string> = {};
      if (route.location) headers.location = route.location;
      if (route.contentLength === 'none') headers['transfer-encoding'] = 'chunked';
      else if (!route.hang || route.contentLength !== undefined) headers['content-length'] = String(route.contentLength ?? body.length);
      res.writeHead(route.status ?? 200, headers);
      if (route.hang) {
        res.flushHeaders();
        if (body.length > 0) res.write(body);
        return;
      }
      res.end(body);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.origin = `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server = null;
  }
}
