/** Canonical error codes; each maps one-to-one onto a gRPC status code at the transport edge. */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'PERMISSION_DENIED'
  | 'UNAUTHENTICATED'
  | 'FAILED_PRECONDITION'
  | 'RESOURCE_EXHAUSTED'
  | 'ABORTED'
  | 'OUT_OF_RANGE'
  | 'UNAVAILABLE'
  | 'DATA_LOSS'
  | 'DEADLINE_EXCEEDED'
  | 'INTERNAL';

/** A domain error: what happened, to what, and what to do, with a code the transport maps to a status. */
export class FedmmError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;
  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'FedmmError';
    this.code = code;
    this.details = Object.freeze({ ...details });
  }
}

export const invalidArgument = (msg: string, details?: Record<string, unknown>): FedmmError =>
  new FedmmError('INVALID_ARGUMENT', msg, details);
export const notFound = (msg: string, details?: Record<string, unknown>): FedmmError =>
  new FedmmError('NOT_FOUND', msg, details);
export const failedPrecondition = (msg: string, details?: Record<string, unknown>): FedmmError =>
  new FedmmError('FAILED_PRECONDITION', msg, details);
export const permissionDenied = (msg: string, details?: Record<string, unknown>): FedmmError =>
  new FedmmError('PERMISSION_DENIED', msg, details);
export const resourceExhausted = (msg: string, details?: Record<string, unknown>): FedmmError =>
  new FedmmError('RESOURCE_EXHAUSTED', msg, details);
export const alreadyExists = (msg: string, details?: Record<string, unknown>): FedmmError =>
  new FedmmError('ALREADY_EXISTS', msg, details);
export const aborted = (msg: string, details?: Record<string, unknown>): FedmmError =>
  new FedmmError('ABORTED', msg, details);
export const dataLoss = (msg: string, details?: Record<string, unknown>): FedmmError =>
  new FedmmError('DATA_LOSS', msg, details);
export const unavailable = (msg: string, details?: Record<string, unknown>): FedmmError =>
  new FedmmError('UNAVAILABLE', msg, details);

export function isFedmmError(e: unknown): e is FedmmError {
  return e instanceof FedmmError;
}
