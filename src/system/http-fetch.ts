// The fetch banger downloads with: undici's from npm rather than the one Node ships. Node 24.21 bundles undici
// 7.29, whose HTTP/1 parser asserts when a server closes the connection while the response body is paused by
// backpressure (a large download written to disk, from a server that sends Connection: close), and that
// assertion is thrown from a socket handler, so it ends the whole process (nodejs/undici#5360; fixed in 8.x).
//
// The dispatcher is passed explicitly: without one, npm undici takes the process-wide global dispatcher, which
// Node's bundled undici registers under the same symbol when anything used the global fetch first, and then
// the bundled (asserting) parser reads the response after all.
import { Agent, fetch as undiciFetch } from 'undici';

const agent = new Agent();

export const httpFetch = ((input: Parameters<typeof undiciFetch>[0], init?: Parameters<typeof undiciFetch>[1]) =>
  undiciFetch(input, { ...init, dispatcher: agent })) as unknown as typeof fetch;
