import type { UnmaskPlan } from '@fedmm/secagg';

interface StoredPlan {
  roundId: string;
  vectorLength: number;
  survivors: string[];
  corrections: { seed: string; sign: 1 | -1 }[];
  encoding: { clipRange: number; maxSummands: number };
}

/** Serialises an unmask plan for the confidential store key the shard workers read. */
export function encodePlan(plan: UnmaskPlan): string {
  const stored: StoredPlan = {
    roundId: plan.roundId,
    vectorLength: plan.vectorLength,
    survivors: [...plan.survivors],
    corrections: plan.corrections.map((c) => ({ seed: Buffer.from(c.seed).toString('base64'), sign: c.sign })),
    encoding: { clipRange: plan.encoding.clipRange, maxSummands: plan.encoding.maxSummands },
  };
  return JSON.stringify(stored);
}

/** Reads an unmask plan written by `encodePlan`. */
export function decodePlan(text: string): UnmaskPlan {
  const s = JSON.parse(text) as StoredPlan;
  return Object.freeze({
    roundId: s.roundId,
    vectorLength: s.vectorLength,
    survivors: Object.freeze([...s.survivors]),
    corrections: Object.freeze(s.corrections.map((c) => ({ seed: new Uint8Array(Buffer.from(c.seed, 'base64')), sign: c.sign }))),
    encoding: Object.freeze({ ...s.encoding }),
  });
}
