// The one client both systems are driven by: the Docker Engine API over a unix socket, under
// `/v1.41/` (Docker 20.10's version; shoald serves every version up to 1.50 under the same paths).
import { Agent, request } from 'node:http';

const API_PREFIX = '/v1.41';
const REQUEST_TIMEOUT_MS = 30_000;

export class ApiError extends Error {
  constructor(readonly status: number, readonly method: string, readonly path: string, message: string) {
    super(`${method} ${path}: ${status} ${message}`);
  }
}

export class EngineApi {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });

  constructor(readonly socket: string) {}

  close(): void {
    this.agent.destroy();
  }

  /** One request; resolves with the status and the parsed JSON body (or the raw text). */
  call(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socket,
          agent: this.agent,
          method,
          path: `${API_PREFIX}${path}`,
          headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': payload.length },
          timeout: REQUEST_TIMEOUT_MS,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = text === '' ? undefined : JSON.parse(text);
            } catch {
              /* not JSON: keep the text */
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${REQUEST_TIMEOUT_MS} ms`)));
      req.on('error', reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  /** A request that must succeed (2xx); the body. */
  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await this.call(method, path, body);
    if (r.status < 200 || r.status >= 300) {
      const msg = typeof r.body === 'object' && r.body !== null && 'message' in r.body ? String((r.body as { message: unknown }).message) : String(r.body);
      throw new ApiError(r.status, method, path, msg);
    }
    return r.body as T;
  }
}

/** `?filters=` for the Docker API. */
export function filters(f: Readonly<Record<string, readonly string[]>>): string {
  const obj: Record<string, Record<string, boolean>> = {};
  for (const [k, values] of Object.entries(f)) obj[k] = Object.fromEntries(values.map((v) => [v, true]));
  return `filters=${encodeURIComponent(JSON.stringify(obj))}`;
}

export interface TaskView {
  readonly ID: string;
  readonly NodeID?: string;
  readonly DesiredState?: string;
  readonly Status?: { readonly State?: string; readonly Err?: string };
}

export interface NodeView {
  readonly ID: string;
  readonly Description?: { readonly Hostname?: string };
  readonly Status?: { readonly State?: string; readonly Addr?: string };
  readonly ManagerStatus?: { readonly Leader?: boolean; readonly Reachability?: string; readonly Addr?: string };
}
