import type { AccountantKind } from '@fedmm/dp';

export type { AccountantKind };
export type Scope = 'tenant' | 'task';
export type ReservationState = 'reserved' | 'committed' | 'released';

/** One homogeneous stretch of a DP mechanism that protects one tenant's data. */
export interface MechanismEvent {
  readonly tenant: string;
  readonly samplingRate: number;
  readonly noiseMultiplier: number;
  readonly steps: number;
}

/** A committed event as an account keeps it: merged by (task, tenant, sampling rate, noise). */
export interface CommittedEvent extends MechanismEvent {
  readonly task: string;
}

/** An event held by an open reservation. */
export interface ReservedEvent extends CommittedEvent {
  readonly reservationId: string;
}

/**
 * The state of one budget: a tenant's (all its tasks) or a task's (all its tenants). Budget
 * checks read and write these documents in one atomic batch.
 */
export interface AccountDoc {
  readonly scope: Scope;
  readonly id: string;
  /** Explicit budget; absent means the service default applies. */
  readonly epsilon?: number;
  readonly delta: number;
  readonly accountant: AccountantKind;
  readonly committed: CommittedEvent[];
  readonly reserved: ReservedEvent[];
}

/** A tenant's epsilon at one ledger transition, in the reservation's task. */
export interface TenantEpsilon {
  /** Epsilon of this reservation's events alone. */
  readonly own: number;
  /** Composed epsilon in the task after the transition. */
  readonly cumulative: number;
}

/** One round's reservation and its history; the ledger is the set of these documents. */
export interface ReservationDoc {
  readonly id: string;
  readonly taskId: string;
  readonly round: number;
  readonly attempt: number;
  readonly state: ReservationState;
  readonly events: MechanismEvent[];
  readonly reservedAt: number;
  readonly reserved: Record<string, TenantEpsilon>;
  readonly committedEvents?: MechanismEvent[];
  readonly committedAt?: number;
  readonly committed?: Record<string, TenantEpsilon>;
  readonly releasedAt?: number;
  readonly released?: Record<string, TenantEpsilon>;
  readonly reason?: string;
}

/** A budget as callers see it. */
export interface BudgetView {
  readonly scope: Scope;
  readonly id: string;
  /** +Infinity when neither an explicit budget nor a service default applies. */
  readonly epsilon: number;
  readonly delta: number;
  readonly accountant: AccountantKind;
  readonly explicit: boolean;
  readonly spentEpsilon: number;
  readonly reservedEpsilon: number;
}

export interface LedgerEntry {
  readonly reservationId: string;
  readonly taskId: string;
  readonly round: number;
  readonly attempt: number;
  readonly tenant: string;
  readonly epsilon: number;
  readonly cumulativeEpsilon: number;
  readonly state: ReservationState;
  readonly timeUnixMs: number;
  readonly events: MechanismEvent[];
  readonly reason: string;
}

export interface ReserveInput {
  readonly taskId: string;
  readonly round: number;
  readonly attempt: number;
  readonly events: readonly MechanismEvent[];
  /** 0 or absent: the service default. Applies to accounts that have no budget yet. */
  readonly delta?: number;
  readonly accountant?: AccountantKind;
}

export interface ReserveResult {
  readonly reservationId: string;
  /** Each tenant's composed epsilon in the task if the reservation is committed as reserved. */
  readonly epsilonByTenant: Record<string, number>;
}
