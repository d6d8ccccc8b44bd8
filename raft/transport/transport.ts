// The seam between the Raft driver and the network. The driver hands over the messages of a
// durable Ready and receives peers' messages; everything about connections, framing, queues
// and retries stays behind this interface, so the interim TCP transport and the later
// gRPC/mTLS one are interchangeable.
import type { Message, NodeId } from '../types.js';

/** What the transport tells the driver about delivery, so the core can adjust its flow control. */
export type TransportReport =
  /** A message to `peer` was dropped (queue full, peer down): the core should probe it again. */
  | { readonly type: 'unreachable'; readonly peer: NodeId }
  /** A snapshot message to `peer` was written to the socket (`ok`) or dropped (`!ok`). */
  | { readonly type: 'snapshot'; readonly peer: NodeId; readonly ok: boolean };

export interface Transport {
  /** Queues messages for their `to` peers. Never blocks and never throws for an unknown or down peer. */
  send(msgs: readonly Message[]): void;
  /** Registers the receiver of every message addressed to this node (one receiver). */
  onMessage(cb: (m: Message) => void): void;
  /** Registers the receiver of delivery reports (one receiver). */
  onReport(cb: (r: TransportReport) => void): void;
  /** Closes every connection and the listener; pending messages are dropped. */
  close(): Promise<void>;
}
