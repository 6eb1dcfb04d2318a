// Helpers shared by this package's tests; not exported from the package.
import { createHash } from 'node:crypto';
import { SecAggClient } from './client.js';
import type { SecAggResult } from './server.js';
import { SecAggServer } from './server.js';
import { seededRandom } from './random.js';
import type { UnmaskResponse } from './messages.js';

/** A 32-byte seed derived from a label, for reproducible tests. */
export function seedOf(label: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(label).digest());
}

/** A reproducible update with coordinates in [-spread, spread]. */
export function syntheticUpdate(label: string, length: number, spread: number): Float32Array {
  const bytes = new Uint8Array(length * 4);
  seededRandom(seedOf(label)).fill(bytes);
  const words = new Uint32Array(bytes.buffer);
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = (words[i]! / 2 ** 32 * 2 - 1) * spread;
  return out;
}

export interface RoundPlan {
  readonly n: number;
  readonly numShares: number;
  readonly threshold: number;
  readonly vectorLength: number;
  readonly clipRange?: number;
  /** Clients that never answer stage 0 / stage 1 / stage 2 / stage 3. */
  readonly silentAt?: Partial<Record<0 | 1 | 2 | 3, readonly string[]>>;
  /** Keep the vectors away from the server (sharded mode) and return them instead. */
  readonly receiptsOnly?: boolean;
  readonly label?: string;
  /** Each client's update; a reproducible random one in [-1.25, 1.25] by default. */
  readonly updateOf?: (clientId: string, vectorLength: number) => Float32Array;
}

export interface RoundRun {
  readonly server: SecAggServer;
  readonly clients: Map<string, SecAggClient>;
  readonly updates: Map<string, Float32Array>;
  readonly maskedVectors: Map<string, Uint32Array>;
  readonly unmaskResponses: Map<string, UnmaskResponse>;
  readonly result: SecAggResult;
}

export const clientIds = (n: number): string[] => Array.from({ length: n }, (_, i) => `client-${String(i).padStart(3, '0')}`);

/** Drives a whole round in process: the stage requests go straight to the clients, nothing is dropped but the silent clients. */
export async function runRound(plan: RoundPlan): Promise<RoundRun> {
  const label = plan.label ?? 'round';
  const ids = clientIds(plan.n);
  const silent = (stage: 0 | 1 | 2 | 3, id: string) => plan.silentAt?.[stage]?.includes(id) ?? false;
  const server = new SecAggServer({
    roundId: `${label}-r1`,
    participants: ids,
    vectorLength: plan.vectorLength,
    clipRange: plan.clipRange ?? 1,
    numShares: plan.numShares,
    threshold: plan.threshold,
    roundSeed: seedOf(`${label}/round-seed`),
  });
  const clients = new Map(ids.map((id) => [id, new SecAggClient({ clientId: id, random: seededRandom(seedOf(`${label}/${id}`)) })]));
  const updates = new Map(
    ids.map((id) => [id, plan.updateOf?.(id, plan.vectorLength) ?? syntheticUpdate(`${label}/update/${id}`, plan.vectorLength, 1.25)]),
  );
  const setup = server.setupRequest();
  for (const id of ids) if (!silent(0, id)) server.acceptSetup(clients.get(id)!.setup(setup));
  for (const req of server.closeSetup()) {
    if (!silent(1, req.clientId)) server.acceptShareKeys(await clients.get(req.clientId)!.shareKeys(req));
  }
  const maskedVectors = new Map<string, Uint32Array>();
  for (const req of server.closeShareKeys()) {
    if (silent(2, req.clientId)) continue;
    const input = clients.get(req.clientId)!.maskInput(req, updates.get(req.clientId)!);
    maskedVectors.set(req.clientId, input.maskedVector!);
    server.acceptMaskedInput(plan.receiptsOnly ? { stage: input.stage, roundId: input.roundId, clientId: input.clientId } : input);
  }
  const unmaskResponses = new Map<string, UnmaskResponse>();
  for (const req of server.closeCollection()) {
    if (silent(3, req.clientId)) continue;
    const response = clients.get(req.clientId)!.unmask(req);
    unmaskResponses.set(req.clientId, response);
    server.acceptUnmask(response);
  }
  const result = await server.finish();
  return { server, clients, updates, maskedVectors, unmaskResponses, result };
}

/** The float sum of the clipped updates of `ids`. */
export function clippedSum(updates: Map<string, Float32Array>, ids: readonly string[], clipRange: number): Float64Array {
  const first = updates.get(ids[0]!)!;
  const out = new Float64Array(first.length);
  for (const id of ids) {
    const u = updates.get(id)!;
    for (let i = 0; i < u.length; i++) out[i]! += Math.max(-clipRange, Math.min(clipRange, u[i]!));
  }
  return out;
}

/** Largest absolute coordinate difference. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
