import { privacy as pb } from '@fedmm/proto';
import type { BudgetView, LedgerEntry, MechanismEvent } from '../domain/types.js';

export function eventFromPb(e: pb.MechanismEvent): MechanismEvent {
  return { tenant: e.tenant, samplingRate: e.samplingRate, noiseMultiplier: e.noiseMultiplier, steps: e.steps };
}

export function eventToPb(e: MechanismEvent): pb.MechanismEvent {
  return { tenant: e.tenant, samplingRate: e.samplingRate, noiseMultiplier: e.noiseMultiplier, steps: e.steps };
}

export function budgetToPb(b: BudgetView): pb.Budget {
  return {
    scope: b.scope,
    id: b.id,
    epsilon: b.epsilon,
    delta: b.delta,
    spentEpsilon: b.spentEpsilon,
    reservedEpsilon: b.reservedEpsilon,
    accountant: b.accountant,
    explicit: b.explicit,
  };
}

export function ledgerEntryToPb(e: LedgerEntry): pb.LedgerEntry {
  return {
    reservationId: e.reservationId,
    taskId: e.taskId,
    round: e.round,
    attempt: e.attempt,
    tenant: e.tenant,
    epsilon: e.epsilon,
    cumulativeEpsilon: e.cumulativeEpsilon,
    state: e.state,
    timeUnixMs: e.timeUnixMs,
    events: e.events.map(eventToPb),
    reason: e.reason,
  };
}
