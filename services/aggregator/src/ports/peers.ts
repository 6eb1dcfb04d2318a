/** A DP mechanism run to account for (per tenant, or '*' for the task as a whole). */
export interface MechanismEvent {
  tenant: string;
  samplingRate: number;
  noiseMultiplier: number;
  steps: number;
}

/** The privacy service as the coordinator uses it. */
export interface PrivacyPort {
  reserve(input: { taskId: string; round: number; attempt: number; events: MechanismEvent[]; delta: number; accountant: 'rdp' | 'pld' }): Promise<{ reservationId: string; epsilonByTenant: Record<string, number> }>;
  commit(reservationId: string, events?: MechanismEvent[]): Promise<Record<string, number>>;
  release(reservationId: string, reason: string): Promise<void>;
}

/** Without a privacy service every reservation is granted (and nothing is accounted). */
export const allowAllPrivacy: PrivacyPort = {
  async reserve(input) {
    return { reservationId: `none:${input.taskId}:${input.round}:${input.attempt}`, epsilonByTenant: {} };
  },
  async commit() {
    return {};
  },
  async release() {},
};

/** The valuation service as the coordinator uses it. */
export interface ValuationPort {
  scoreRound(taskId: string, round: number): Promise<void>;
}

export const noValuation: ValuationPort = { async scoreRound() {} };

/** Where the coordinator records what it does (the audit trail). */
export interface AuditPort {
  append(taskId: string, kind: string, payload: Record<string, unknown>, actor: string): Promise<void>;
}

export const noAudit: AuditPort = { async append() {} };
