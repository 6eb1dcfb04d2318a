import { invalidArgument } from '@fedmm/core';
import { computeRdp, DEFAULT_RDP_ORDERS, PldAccountant, rdpToEpsilon, type AccountantKind } from '@fedmm/dp';
import type { AccountDoc, CommittedEvent } from './types.js';

type Mechanism = { readonly samplingRate: number; readonly noiseMultiplier: number; readonly steps: number };

// One-step RDP curves by (q, sigma). A curve costs ~10 ms and rounds repeat the same few
// mechanisms, so every budget check after the first is a sum of cached curves.
const rdpCache = new Map<string, Float64Array>();
const RDP_CACHE_LIMIT = 4096;

function oneStepRdp(samplingRate: number, noiseMultiplier: number): Float64Array {
  const key = `${samplingRate}|${noiseMultiplier}`;
  let curve = rdpCache.get(key);
  if (!curve) {
    curve = computeRdp({ samplingRate, noiseMultiplier, steps: 1, orders: DEFAULT_RDP_ORDERS });
    if (rdpCache.size >= RDP_CACHE_LIMIT) rdpCache.clear();
    rdpCache.set(key, curve);
  }
  return curve;
}

/** Merges events with the same sampling rate and noise multiplier by adding their steps (exact for composition). */
export function mergeMechanisms(events: readonly Mechanism[]): Mechanism[] {
  const byKey = new Map<string, { samplingRate: number; noiseMultiplier: number; steps: number }>();
  for (const e of events) {
    if (e.steps === 0 || e.samplingRate === 0) continue;
    const key = `${e.samplingRate}|${e.noiseMultiplier}`;
    const cur = byKey.get(key);
    if (cur) cur.steps += e.steps;
    else byKey.set(key, { samplingRate: e.samplingRate, noiseMultiplier: e.noiseMultiplier, steps: e.steps });
  }
  return [...byKey.values()];
}

// PLD epsilons by (delta, merged events). A PLD composition takes about a second, and under
// client-level DP every tenant of a task has the same events, so one check repeats the same one.
const pldCache = new Map<string, number>();
const PLD_CACHE_LIMIT = 1024;

/** Epsilon at delta of the composition of all events (Poisson-subsampled Gaussian, add/remove adjacency). */
export function composedEpsilon(events: readonly Mechanism[], delta: number, accountant: AccountantKind): number {
  const merged = mergeMechanisms(events);
  if (merged.length === 0) return 0;
  if (accountant === 'pld') {
    merged.sort((a, b) => a.samplingRate - b.samplingRate || a.noiseMultiplier - b.noiseMultiplier);
    const key = `${delta}|${merged.map((e) => `${e.samplingRate},${e.noiseMultiplier},${e.steps}`).join(';')}`;
    const hit = pldCache.get(key);
    if (hit !== undefined) return hit;
    const acc = new PldAccountant();
    for (const e of merged) acc.compose(e);
    const eps = acc.getEpsilonForDelta(delta);
    if (pldCache.size >= PLD_CACHE_LIMIT) pldCache.clear();
    pldCache.set(key, eps);
    return eps;
  }
  const rdp = new Float64Array(DEFAULT_RDP_ORDERS.length);
  for (const e of merged) {
    const curve = oneStepRdp(e.samplingRate, e.noiseMultiplier);
    for (let k = 0; k < rdp.length; k += 1) rdp[k] = (rdp[k] as number) + (curve[k] as number) * e.steps;
  }
  return rdpToEpsilon(DEFAULT_RDP_ORDERS, rdp, delta).epsilon;
}

/**
 * Epsilon of an account over the given events. A tenant account composes all of the tenant's
 * events across tasks. A task account composes each tenant's events in the task separately and
 * reports the largest: every record (or client) belongs to one tenant, so the tenants' datasets
 * are disjoint and their guarantees combine in parallel, not in sequence.
 */
export function accountEpsilon(doc: Pick<AccountDoc, 'scope' | 'delta' | 'accountant'>, events: readonly CommittedEvent[]): number {
  if (doc.scope === 'tenant') return composedEpsilon(events, doc.delta, doc.accountant);
  let worst = 0;
  for (const tenantEvents of groupByTenant(events).values()) worst = Math.max(worst, composedEpsilon(tenantEvents, doc.delta, doc.accountant));
  return worst;
}

/** Events grouped by tenant, in first-seen order. */
export function groupByTenant<E extends { readonly tenant: string }>(events: readonly E[]): Map<string, E[]> {
  const out = new Map<string, E[]>();
  for (const e of events) {
    const list = out.get(e.tenant);
    if (list) list.push(e);
    else out.set(e.tenant, [e]);
  }
  return out;
}

/** Adds committed events to a list, merging those of one (task, tenant, sampling rate, noise). */
export function addCommitted(list: readonly CommittedEvent[], add: readonly CommittedEvent[]): CommittedEvent[] {
  const out = list.map((e) => ({ ...e }));
  for (const e of add) {
    const same = out.find((c) => c.task === e.task && c.tenant === e.tenant && c.samplingRate === e.samplingRate && c.noiseMultiplier === e.noiseMultiplier);
    if (same) (same as { steps: number }).steps += e.steps;
    else out.push({ task: e.task, tenant: e.tenant, samplingRate: e.samplingRate, noiseMultiplier: e.noiseMultiplier, steps: e.steps });
  }
  return out;
}

/** Parses an accountant name; empty means RDP. */
export function parseAccountant(name: string | undefined): AccountantKind {
  if (name === undefined || name === '' || name === 'rdp') return 'rdp';
  if (name === 'pld') return 'pld';
  throw invalidArgument(`accountant must be "rdp" or "pld", got ${JSON.stringify(name)}`);
}
