// The fetch banger downloads with: undici's from npm rather than the one Node ships. Node 24.21 bundles undici
// 7.29, whose HTTP/1 parser asserts when a server closes the connection while the response body is paused by
// backpressure (a large download written to disk, from a server that sends Connection: close), and that
// assertion is thrown from a socket handler, so it ends the whole daemon (nodejs/undici#5360; fixed in 8.x).
import { fetch as undiciFetch } from 'undici';

export const httpFetch = undiciFetch as unknown as typeof fetch;
