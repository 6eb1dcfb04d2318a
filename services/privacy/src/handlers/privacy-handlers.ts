import { privacy as pb } from '@fedmm/proto';
import { invalidArgument, type Logger } from '@fedmm/core';
import { unary, type ServiceBinding } from '@fedmm/service-kit';
import { parseAccountant } from '../domain/accounting.js';
import { parseScope } from '../domain/ids.js';
import type { PrivacyLedger } from '../domain/ledger.js';
import { budgetToPb, eventFromPb, ledgerEntryToPb } from './convert.js';

/** gRPC bindings of the privacy service: proto <-> domain mapping and status codes only. */
export function privacyBinding(ledger: PrivacyLedger, log: Logger): ServiceBinding {
  const impl: pb.PrivacyServiceServer = {
    setBudget: unary('SetBudget', log, async (req: pb.SetBudgetRequest) => {
      const b = req.budget;
      if (!b) throw invalidArgument('SetBudget needs a budget: scope, id, epsilon and delta');
      const view = await ledger.setBudget({ scope: parseScope(b.scope), id: b.id, epsilon: b.epsilon, delta: b.delta, accountant: parseAccountant(b.accountant) });
      return { budget: budgetToPb(view) };
    }),
    getBudget: unary('GetBudget', log, async (req: pb.GetBudgetRequest) => ({ budget: budgetToPb(await ledger.getBudget(parseScope(req.scope), req.id)) })),
    reserve: unary('Reserve', log, async (req: pb.ReserveRequest) => {
      const r = await ledger.reserve({
        taskId: req.taskId,
        round: req.round,
        attempt: req.attempt,
        events: req.events.map(eventFromPb),
        delta: req.delta,
        accountant: parseAccountant(req.accountant),
      });
      return { reservationId: r.reservationId, epsilonByTenant: r.epsilonByTenant };
    }),
    commit: unary('Commit', log, async (req: pb.CommitRequest) => ({ epsilonByTenant: await ledger.commit(req.reservationId, req.events.map(eventFromPb)) })),
    release: unary('Release', log, async (req: pb.ReleaseRequest) => {
      await ledger.release(req.reservationId, req.reason);
      return {};
    }),
    getLedger: unary('GetLedger', log, async (req: pb.GetLedgerRequest) => {
      const r = await ledger.ledger({ ...(req.taskId ? { taskId: req.taskId } : {}), ...(req.tenant ? { tenant: req.tenant } : {}) });
      return { entries: r.entries.map(ledgerEntryToPb), epsilonByTenant: r.epsilonByTenant };
    }),
    computeEpsilon: unary('ComputeEpsilon', log, async (req: pb.ComputeEpsilonRequest) => ({
      epsilon: ledger.computeEpsilon({ samplingRate: req.samplingRate, noiseMultiplier: req.noiseMultiplier, steps: req.steps, delta: req.delta, accountant: parseAccountant(req.accountant) }),
    })),
    planNoise: unary('PlanNoise', log, async (req: pb.PlanNoiseRequest) => ({
      noiseMultiplier: ledger.planNoise({ epsilon: req.epsilon, delta: req.delta, samplingRate: req.samplingRate, steps: req.steps, accountant: parseAccountant(req.accountant) }),
    })),
  };
  return { name: 'fedmm.v1.PrivacyService', definition: pb.PrivacyServiceService, implementation: impl };
}
