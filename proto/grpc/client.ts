// Small helpers for cluster clients: promise-returning unary calls with a deadline.
import * as grpc from '@grpc/grpc-js';

export const DEFAULT_CALL_TIMEOUT_MS = 10_000;

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (error: grpc.ServiceError | null, response: Res) => void,
) => grpc.ClientUnaryCall;

/** Calls a generated unary method (bound to its client) and resolves with its response. */
export function callUnary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, timeoutMs: number = DEFAULT_CALL_TIMEOUT_MS): Promise<Res> {
  return new Promise((resolve, reject) => {
    method(request, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

export function isServiceError(err: unknown): err is grpc.ServiceError {
  return err instanceof Error && typeof (err as Partial<grpc.ServiceError>).code === 'number';
}
