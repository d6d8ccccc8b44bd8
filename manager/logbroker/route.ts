// Where a log subscription or an exec goes: to this manager's broker when it leads (the workers'
// streams are there), else once over Logs.SubscribeLogs / Logs.Exec to the leader. Why not a broker
// per manager: workers keep their dispatcher session with the leader only, so only the leader knows
// which workers are connected; one hop from a follower keeps the workers to one stream each.
// A forwarded call carries FORWARDED_HEADER and is never forwarded again (two managers that each
// believe the other leads cannot bounce a call between them).
import * as grpc from '@grpc/grpc-js';

import { LogsClient, type ExecMessage, type ExecRequest, type SubscribeLogsMessage } from '../../proto/gen/shoal/logs.js';
import { LogSubscriptionOptions_Stream } from '../../proto/gen/shoal/logs.js';
import { CLUSTER_CHANNEL_OPTIONS, clusterChannelCredentials, type TlsMaterial } from '../../proto/grpc/tls.js';
import type { Cancel, ExecSink, LogBroker, LogSink, LogSubscriptionRequest } from './broker.js';
import { LogBrokerError } from './errors.js';

export const FORWARDED_HEADER = 'shoal-logs-forwarded';
/** Trailer of a SubscribeLogs stream: the nodes whose lines could not all be read, comma-separated. */
export const INCOMPLETE_TRAILER = 'shoal-logs-incomplete';

export interface BrokerLocator {
  /** This manager's broker while it leads; null otherwise. */
  leaderBroker(): LogBroker | null;
  /** The leader's cluster address when another manager leads; null when no leader is known. */
  leaderAddr(): string | null;
  readonly material: TlsMaterial;
  readonly clusterId: string;
}

/** What locates the broker from a Manager (structural, so tests can pass a small object). */
export interface ManagerLike {
  readonly isLeader: boolean;
  readonly identity: TlsMaterial;
  readonly clusterId: string;
  status(): { readonly leader: string | null };
  readonly membership: { addrOf(nodeId: string): string | null };
}

export function managerLocator(m: ManagerLike, broker: () => LogBroker | null): BrokerLocator {
  return {
    leaderBroker: () => (m.isLeader ? broker() : null),
    leaderAddr: () => {
      const leader = m.status().leader;
      return leader === null ? null : m.membership.addrOf(leader);
    },
    // Read at each call: a renewed certificate is used from then on.
    get material() {
      return m.identity;
    },
    clusterId: m.clusterId,
  };
}

export interface RouteOptions {
  /** False for a call that was forwarded to us already. */
  readonly forwardAllowed?: boolean;
}

function noLeader(): LogBrokerError {
  return new LogBrokerError('ERR_NO_LEADER', 'no leader is known right now (an election is in progress or a quorum of managers is unreachable); retry shortly');
}

/** Opens a subscription here or at the leader. Rejects with LogBrokerError when it cannot start. */
export async function openLogs(locator: BrokerLocator, request: LogSubscriptionRequest, sink: LogSink, o: RouteOptions = {}): Promise<Cancel> {
  const local = locator.leaderBroker();
  if (local !== null) return local.subscribe(request, sink);
  const addr = locator.leaderAddr();
  if (addr === null || o.forwardAllowed === false) throw noLeader();
  const client = new LogsClient(addr, clusterChannelCredentials(locator.material, locator.clusterId), CLUSTER_CHANNEL_OPTIONS);
  const md = new grpc.Metadata();
  md.set(FORWARDED_HEADER, '1');
  const call = client.subscribeLogs({ selector: request.selector, options: request.options }, md);
  let done = false;
  let incomplete: string[] = [];
  const finish = (err?: LogBrokerError): void => {
    if (done) return;
    done = true;
    client.close();
    sink.end({ incomplete, ...(err !== undefined ? { error: err } : {}) });
  };
  call.on('data', (msg: SubscribeLogsMessage) => {
    try {
      sink.write(msg.messages);
    } catch (err) {
      call.cancel();
      finish(err instanceof LogBrokerError ? err : new LogBrokerError('ERR_LOGS_SLOW_READER', (err as Error).message));
    }
  });
  call.on('status', (s: grpc.StatusObject) => {
    const v = s.metadata.get(INCOMPLETE_TRAILER)[0];
    if (typeof v === 'string' && v !== '') incomplete = v.split(',');
    if (s.code === grpc.status.OK) finish();
  });
  call.on('error', (err: grpc.ServiceError) => finish(err.code === grpc.status.CANCELLED ? undefined : LogBrokerError.fromGrpc(err)));
  return {
    cancel: () => {
      if (done) return;
      call.cancel();
      finish();
    },
  };
}

/** Starts an exec here or at the leader. Rejects with LogBrokerError when it cannot start. */
export async function openExec(locator: BrokerLocator, request: ExecRequest, sink: ExecSink, o: RouteOptions = {}): Promise<Cancel> {
  const local = locator.leaderBroker();
  if (local !== null) return local.exec(request, sink);
  const addr = locator.leaderAddr();
  if (addr === null || o.forwardAllowed === false) throw noLeader();
  const client = new LogsClient(addr, clusterChannelCredentials(locator.material, locator.clusterId), CLUSTER_CHANNEL_OPTIONS);
  const md = new grpc.Metadata();
  md.set(FORWARDED_HEADER, '1');
  const call = client.exec(request, md);
  // The leader sends one empty message once the command was handed to its node; a failure to
  // start (not found, not running, node away) arrives as the stream's error instead, and rejects.
  return new Promise<Cancel>((resolve, reject) => {
    let started = false;
    let done = false;
    const exit = (r: { exitCode: number; error: string; nodeId: string }): void => {
      if (done) return;
      done = true;
      client.close();
      sink.exit(r);
    };
    const handle: Cancel = {
      cancel: () => {
        if (!done) call.cancel();
      },
    };
    call.on('data', (msg: ExecMessage) => {
      if (!started) {
        started = true;
        resolve(handle);
      }
      if (msg.data.length > 0) sink.output(msg.stream === LogSubscriptionOptions_Stream.STREAM_STDERR ? 'stderr' : 'stdout', msg.data);
      if (msg.exited) exit({ exitCode: msg.exitCode, error: msg.error, nodeId: msg.nodeId });
    });
    call.on('error', (err: grpc.ServiceError) => {
      if (!started) {
        done = true;
        client.close();
        reject(LogBrokerError.fromGrpc(err));
        return;
      }
      exit({ exitCode: -1, error: err.code === grpc.status.CANCELLED ? 'cancelled' : LogBrokerError.fromGrpc(err).message, nodeId: '' });
    });
    call.on('end', () => exit({ exitCode: -1, error: 'the leader ended the exec stream without an exit code', nodeId: '' }));
  });
}
