// What the workloads need of a system under test: hosts with a Docker-compatible API socket, a way
// to SIGKILL and restart a host's daemon, the image to run, and its own CLI for `service ls`.
import { EngineApi } from './api.js';

export interface BenchHost {
  readonly name: string;
  readonly netns: string;
  readonly socket: string;
  readonly address: string;
  readonly role: 'manager' | 'worker';
}

export interface SystemUnderTest {
  readonly name: 'shoal' | 'docker-swarm';
  readonly hosts: readonly BenchHost[];
  /** The same busybox image for both systems, from the system's local registry. */
  readonly image: string;
  api(host: BenchHost): EngineApi;
  /** SIGKILL the host's daemon (only the daemon: helpers it started may live on). */
  kill(host: BenchHost): Promise<void>;
  /** Start the host's daemon again; resolves once its API answers. */
  start(host: BenchHost): Promise<void>;
  /** `service ls` through the system's own CLI against `host`; the output. */
  cliServiceLs(host: BenchHost): Promise<string>;
  /** Stops every daemon and removes everything the system made. Never throws. */
  down(): Promise<void>;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `probe` every `everyMs` until it returns a value, for at most `limitMs`. */
export async function waitUntil<T>(what: string, limitMs: number, everyMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + limitMs;
  let last = '';
  for (let i = 0; i < Math.ceil(limitMs / everyMs) + 1; i++) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() >= deadline) break;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${limitMs} ms waiting for ${what}${last === '' ? '' : ` (last error: ${last})`}`);
}

/** Keeps one EngineApi per socket. */
export class ApiPool {
  private readonly apis = new Map<string, EngineApi>();

  get(socket: string): EngineApi {
    let a = this.apis.get(socket);
    if (a === undefined) {
      a = new EngineApi(socket);
      this.apis.set(socket, a);
    }
    return a;
  }

  /** Drops the connections of one socket (after its daemon died). */
  reset(socket: string): void {
    this.apis.get(socket)?.close();
    this.apis.delete(socket);
  }

  closeAll(): void {
    for (const a of this.apis.values()) a.close();
    this.apis.clear();
  }
}
