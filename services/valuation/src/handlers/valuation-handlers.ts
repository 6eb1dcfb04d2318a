import { invalidArgument, type Logger } from '@fedmm/core';
import { valuation as pb } from '@fedmm/proto';
import { unary, type ServiceBinding } from '@fedmm/service-kit';
import type { Scorer } from '../domain/scorer.js';
import type { ContributionRow } from '../domain/types.js';

const rowToPb = (r: ContributionRow): pb.Contribution => ({
  tenant: r.tenant,
  roundValue: r.roundValue,
  cumulativeValue: r.cumulativeValue,
  rewardShare: r.rewardShare,
  tier: r.tier,
  versionDelayRounds: r.versionDelayRounds,
});

/** gRPC bindings of ValuationService: proto <-> domain mapping only. */
export function valuationBinding(scorer: Scorer, log: Logger): ServiceBinding {
  const impl: pb.ValuationServiceServer = {
    scoreRound: unary('ScoreRound', log, async (req: pb.ScoreRoundRequest): Promise<pb.ScoreRoundResponse> => {
      if (!req.taskId) throw invalidArgument('ScoreRound needs task_id');
      const { round, table } = await scorer.scoreRound(req.taskId, req.round);
      return {
        contributions: table.map(rowToPb),
        method: round.method,
        evaluations: round.evaluations,
        utility: round.utility,
        secure: round.secure,
        values: { ...round.values },
      };
    }),
    getContributions: unary('GetContributions', log, async (req: pb.GetContributionsRequest): Promise<pb.GetContributionsResponse> => {
      if (!req.taskId) throw invalidArgument('GetContributions needs task_id');
      const { state, table } = await scorer.contributions(req.taskId);
      return {
        contributions: table.map(rowToPb),
        rounds: (state?.rounds ?? []).map((r) => ({
          round: r.round,
          values: { ...r.values },
          method: r.method,
          evaluations: r.evaluations,
          utility: r.utility,
          secure: r.secure,
          attempt: r.attempt,
        })),
      };
    }),
  };
  return { name: 'fedmm.v1.ValuationService', definition: pb.ValuationServiceService, implementation: impl };
}
