import { BangerError } from '../protocol/errors.ts';

/**
 * Waits for work shared by several callers (an image build, a KVM probe) on behalf of one of them: rejects with
 * CANCELLED as soon as that caller's signal fires, and leaves the work itself running for the others.
 */
export function raceSignal<T>(promise: Promise<T>, signal: AbortSignal, message = 'cancelled'): Promise<T> {
  if (signal.aborted) return Promise.reject(new BangerError('CANCELLED', message));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new BangerError('CANCELLED', message));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
