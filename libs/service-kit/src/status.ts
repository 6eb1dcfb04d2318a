import { status, Metadata, type ServiceError } from '@grpc/grpc-js';
import { FedmmError, type ErrorCode } from '@fedmm/core';

const toStatus: Record<ErrorCode, status> = {
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  PERMISSION_DENIED: status.PERMISSION_DENIED,
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  ABORTED: status.ABORTED,
  OUT_OF_RANGE: status.OUT_OF_RANGE,
  UNAVAILABLE: status.UNAVAILABLE,
  DATA_LOSS: status.DATA_LOSS,
  DEADLINE_EXCEEDED: status.DEADLINE_EXCEEDED,
  INTERNAL: status.INTERNAL,
};

const fromStatus = new Map<number, ErrorCode>(Object.entries(toStatus).map(([k, v]) => [v, k as ErrorCode]));

/** The gRPC status for a domain error code. */
export function grpcStatusOf(code: ErrorCode): status {
  return toStatus[code];
}

/** Turns any thrown value into a gRPC ServiceError; unknown errors become INTERNAL without internals leaking. */
export function toServiceError(e: unknown): Partial<ServiceError> & { code: status; details: string } {
  if (e instanceof FedmmError) {
    const md = new Metadata();
    md.set('fedmm-error-code', e.code);
    return { code: toStatus[e.code], details: e.message, metadata: md };
  }
  if (isServiceError(e)) return { code: e.code, details: e.details, metadata: e.metadata };
  return { code: status.INTERNAL, details: `internal error: ${(e as Error)?.message ?? String(e)}` };
}

export function isServiceError(e: unknown): e is ServiceError {
  return typeof e === 'object' && e !== null && 'code' in e && typeof (e as ServiceError).code === 'number' && 'details' in e;
}

/** Turns a gRPC error from a peer back into a domain error with the same code. */
export function fromServiceError(e: unknown, what: string): FedmmError {
  if (e instanceof FedmmError) return e;
  if (isServiceError(e)) {
    const code = fromStatus.get(e.code) ?? (e.code === status.CANCELLED ? 'UNAVAILABLE' : 'INTERNAL');
    return new FedmmError(code, `${what}: ${e.details || e.message}`, { grpcCode: e.code });
  }
  return new FedmmError('INTERNAL', `${what}: ${(e as Error)?.message ?? String(e)}`);
}
