import { randomBytes } from 'node:crypto';
import { FedmmError, isFedmmError, type Logger } from '@fedmm/core';
import { storeKey, type Store, type Write } from '@fedmm/store';
import {
  decodeSecAggMessage, encodeSecAggMessage, relayInboxParts, relayKeyParts, relayRoundParts, relayStageOf, ROUND_SEED_BYTES, SecAggServer,
  SECAGG_SERVER_PARTY, SECAGG_STAGES,
  type RelayEntry, type SetupResponse, type ShareKeysResponse, type UnmaskPlan, type UnmaskResponse,
} from '@fedmm/secagg';
import { secaggPlanKey, secaggRoundPrefix, secaggStageKey } from '../domain/keys.js';
import type { RoundRecord, SecAggRoundState, TaskRecord } from '../domain/types.js';
import { encodePlan } from './plan-codec.js';

/** Writes a batch fenced by the coordinator's lease (fails when leadership moved). */
export type FencedWriter = (writes: Write[]) => Promise<void>;

/** What one step of a secure round's protocol decided. */
export type SecAggStep =
  | { readonly kind: 'wait' }
  /** The round record changed (a stage closed); persist it. */
  | { readonly kind: 'update'; readonly round: RoundRecord }
  /** The unmask plan is stored: the round may aggregate. */
  | { readonly kind: 'unmasked'; readonly round: RoundRecord }
  /** Too many dropouts or a bad share: the round fails, nothing was revealed. */
  | { readonly kind: 'fail'; readonly reason: string };


/** How long each of the short sub-stages (setup, share keys, unmask) stays open: a fifth of the round's deadline. */
export function secaggStageMs(task: TaskRecord): number {
  return Math.max(1000, (task.roundDeadlineSeconds * 1000) / 5);
}

/**
 * Drives the server side of SecAgg+ for the coordinator. Requests go to the clients through the
 * gateway's relay store (the coordinator is the relay party SECAGG_SERVER_PARTY) and responses
 * are read from it. A stage closes when every expected client answered or at its sub-deadline.
 * The responses the server accepted are snapshotted when a stage closes, so a new leader
 * rebuilds the server by replaying them and continues the round where it stood.
 */
export class SecAggDriver {
  readonly #servers = new Map<string, SecAggServer>();
  /** Relay payloads already fed to a server, per round and sender, so each is checked once. */
  readonly #seen = new Map<string, Map<string, string>>();

  constructor(private readonly store: Store, private readonly write: FencedWriter, private readonly log: Logger) {}

  /** The protocol state of a new secure round; fails with FAILED_PRECONDITION when the task's settings cannot form a valid round. */
  plan(task: TaskRecord, round: Pick<RoundRecord, 'taskId' | 'number' | 'attempt' | 'selected' | 'openedAt'>, vectorLength: number): SecAggRoundState {
    const p = task.privacy;
    const input = {
      roundId: `${round.taskId}/${round.number}/${round.attempt}`,
      participants: round.selected,
      vectorLength,
      clipRange: p.clipNorm,
      // 0 = a complete graph (SecAgg as Bonawitz et al. describe it).
      numShares: p.secaggNumShares > 0 ? p.secaggNumShares : round.selected.length,
      threshold: p.secaggThreshold,
      roundSeed: randomBytes(ROUND_SEED_BYTES),
    };
    let server: SecAggServer;
    try {
      server = new SecAggServer(input);
    } catch (e) {
      throw new FedmmError('FAILED_PRECONDITION', `round ${round.number} of task ${round.taskId} cannot run secure aggregation with ${round.selected.length} selected clients: ${(e as Error).message}`);
    }
    this.#servers.set(input.roundId, server);
    return {
      roundId: input.roundId, roundSeed: Buffer.from(input.roundSeed).toString('base64'), participants: [...server.config.participants],
      vectorLength, clipRange: input.clipRange, numShares: input.numShares, threshold: input.threshold,
      stage: 'setup', stageDeadlineAt: round.openedAt + secaggStageMs(task), joined: [], shared: [], survivors: [],
    };
  }

  /** Sends stage 0 (the round configuration) to every selected client. */
  async sendSetup(r: RoundRecord): Promise<void> {
    const server = await this.#server(r);
    const req = server.setupRequest();
    await this.#post(r, 0, r.secagg!.participants.map((to) => ({ to, msg: req })));
  }

  /** Advances a round in setup or share-keys: closes the stage when all answered or at its sub-deadline. */
  async advanceSetup(task: TaskRecord, r: RoundRecord, now = Date.now()): Promise<SecAggStep> {
    const st = r.secagg!;
    if (st.stage !== 'setup' && st.stage !== 'share-keys') return { kind: 'wait' };
    const server = await this.#server(r);
    try {
      if (st.stage === 'setup') {
        const got = await this.#feed<SetupResponse>(r, 'setup', st.participants, (m) => server.acceptSetup(m));
        if (got.length < st.participants.length && now < st.stageDeadlineAt) return { kind: 'wait' };
        const requests = server.closeSetup();
        const joined = requests.map((q) => q.clientId);
        await this.#snapshot(r, 0, got.filter((g) => joined.includes(g.from)));
        await this.#post(r, 1, requests.map((q) => ({ to: q.clientId, msg: q })));
        this.log.info('secure aggregation: keys announced', { task: r.taskId, round: r.number, attempt: r.attempt, joined: joined.length, of: st.participants.length });
        return { kind: 'update', round: { ...r, secagg: { ...st, stage: 'share-keys', joined, stageDeadlineAt: now + secaggStageMs(task) } } };
      }
      const got = await this.#feed<ShareKeysResponse>(r, 'share-keys', st.joined, (m) => server.acceptShareKeys(m));
      if (got.length < st.joined.length && now < st.stageDeadlineAt) return { kind: 'wait' };
      const requests = server.closeShareKeys();
      const shared = requests.map((q) => q.clientId);
      await this.#snapshot(r, 1, got.filter((g) => shared.includes(g.from)));
      await this.#post(r, 2, requests.map((q) => ({ to: q.clientId, msg: q })));
      this.log.info('secure aggregation: shares routed, collecting masked inputs', { task: r.taskId, round: r.number, attempt: r.attempt, shared: shared.length });
      // Collection lasts until the round's own deadline.
      return { kind: 'update', round: { ...r, secagg: { ...st, stage: 'collect-masked', shared, stageDeadlineAt: r.deadlineAt } } };
    } catch (e) {
      return this.#failure(r, e);
    }
  }

  /** Closes collection at seal: the received uploads are the survivors; asks them for their shares (stage 3). */
  async closeCollection(task: TaskRecord, r: RoundRecord, now = Date.now()): Promise<SecAggStep> {
    const st = r.secagg!;
    const server = await this.#server(r);
    try {
      if (st.stage !== 'collect-masked') {
        throw new FedmmError('FAILED_PRECONDITION', `round ${r.number} of task ${r.taskId} sealed while secure aggregation was still at stage '${st.stage}'; fewer than ${st.threshold} clients completed the key exchange`);
      }
      for (const u of r.received) server.acceptMaskedInput({ stage: 'collect-masked', roundId: st.roundId, clientId: u.tenant });
      const requests = server.closeCollection();
      const survivors = requests.map((q) => q.clientId);
      await this.#post(r, 3, requests.map((q) => ({ to: q.clientId, msg: q })));
      return { kind: 'update', round: { ...r, secagg: { ...st, stage: 'unmask', survivors, stageDeadlineAt: now + secaggStageMs(task) } } };
    } catch (e) {
      return this.#failure(r, e);
    }
  }

  /** Stage 3: collects the survivors' shares; when all answered or at the sub-deadline, unmasks and stores the plan. */
  async advanceUnmask(r: RoundRecord, now = Date.now()): Promise<SecAggStep> {
    const st = r.secagg!;
    if (st.stage !== 'unmask') return { kind: 'wait' };
    const server = await this.#server(r);
    try {
      const got = await this.#feed<UnmaskResponse>(r, 'unmask', st.survivors, (m) => server.acceptUnmask(m));
      if (got.length < st.survivors.length && now < st.stageDeadlineAt) return { kind: 'wait' };
      const { plan } = await server.finish();
      await this.#storePlan(r, plan);
      this.#forget(st.roundId);
      this.log.info('secure aggregation: unmask plan ready', { task: r.taskId, round: r.number, attempt: r.attempt, survivors: plan.survivors.length, answered: got.length });
      return { kind: 'unmasked', round: { ...r, secagg: { ...st, stage: 'done' } } };
    } catch (e) {
      return this.#failure(r, e);
    }
  }

  /** Deletes everything secret or stale of a round that ended: relay entries, snapshots, the plan. */
  async cleanup(r: RoundRecord): Promise<void> {
    if (!r.secagg) return;
    this.#forget(r.secagg.roundId);
    const keys = [
      ...(await this.store.list(storeKey(...relayRoundParts(r.taskId, r.number)))).map((e) => e.key),
      ...(await this.store.list(secaggRoundPrefix(r.taskId, r.number, r.attempt))).map((e) => e.key),
      secaggPlanKey(r.taskId, r.number, r.attempt),
    ];
    for (let i = 0; i < keys.length; i += 200) await this.write(keys.slice(i, i + 200).map((key) => ({ key, value: null })));
  }

  #forget(roundId: string): void {
    this.#servers.get(roundId)?.abort('the round ended');
    this.#servers.delete(roundId);
    this.#seen.delete(roundId);
  }

  #failure(r: RoundRecord, e: unknown): SecAggStep {
    if (!isFedmmError(e) || (e.code !== 'FAILED_PRECONDITION' && e.code !== 'DATA_LOSS')) throw e;
    this.#forget(r.secagg!.roundId);
    return { kind: 'fail', reason: `secure aggregation failed: ${e.message}` };
  }

  async #storePlan(r: RoundRecord, plan: UnmaskPlan): Promise<void> {
    await this.write([{ key: secaggPlanKey(r.taskId, r.number, r.attempt), value: encodePlan(plan) }]);
  }

  /** Writes server requests into the relay, addressed from SECAGG_SERVER_PARTY. */
  async #post(r: RoundRecord, stage: number, out: { to: string; msg: object }[]): Promise<void> {
    const writes: Write[] = out.map(({ to, msg }) => {
      const entry: RelayEntry = { from: SECAGG_SERVER_PARTY, to, stage, payload: Buffer.from(encodeSecAggMessage(msg)).toString('base64') };
      return { key: storeKey(...relayKeyParts(r.taskId, r.number, stage, to, SECAGG_SERVER_PARTY)), value: JSON.stringify(entry) };
    });
    for (let i = 0; i < writes.length; i += 200) await this.write(writes.slice(i, i + 200));
  }

  /**
   * Reads the responses addressed to the server at a stage and feeds each new one to the server.
   * The sender is the relay entry's `from` (the gateway sets it from the mTLS identity), never the
   * body's clientId. A malformed or stale message is logged once and ignored: that client counts as
   * not having answered. Returns the responses accepted so far.
   */
  async #feed<T extends { stage: string; clientId: string }>(r: RoundRecord, stage: keyof typeof SECAGG_STAGES, from: readonly string[], accept: (m: T) => void): Promise<{ from: string; payload: string }[]> {
    const roundId = r.secagg!.roundId;
    let seen = this.#seen.get(roundId);
    if (!seen) this.#seen.set(roundId, (seen = new Map()));
    const accepted: { from: string; payload: string }[] = [];
    const entries = await this.store.list(storeKey(...relayInboxParts(r.taskId, r.number, relayStageOf(stage), SECAGG_SERVER_PARTY)));
    for (const e of entries) {
      const entry = JSON.parse(e.value) as RelayEntry;
      if (!from.includes(entry.from)) continue;
      const key = `${stage}/${entry.from}`;
      const prior = seen.get(key);
      if (prior === entry.payload) {
        accepted.push({ from: entry.from, payload: entry.payload });
        continue;
      }
      if (prior === `rejected:${entry.payload}`) continue;
      try {
        const msg = decodeSecAggMessage<T>(Buffer.from(entry.payload, 'base64'), stage);
        accept({ ...msg, clientId: entry.from });
        seen.set(key, entry.payload);
        accepted.push({ from: entry.from, payload: entry.payload });
      } catch (err) {
        if (isFedmmError(err) && err.code === 'INVALID_ARGUMENT') {
          seen.set(key, `rejected:${entry.payload}`);
          this.log.warn('secure aggregation: ignoring a message', { task: r.taskId, round: r.number, stage, from: entry.from, reason: err.message });
          continue;
        }
        throw err;
      }
    }
    return accepted;
  }

  async #snapshot(r: RoundRecord, stage: number, accepted: { from: string; payload: string }[]): Promise<void> {
    await this.write([{ key: secaggStageKey(r.taskId, r.number, r.attempt, stage), value: JSON.stringify(accepted) }]);
  }

  /** The round's server, rebuilt by replaying the snapshots of closed stages when this process does not hold it. */
  async #server(r: RoundRecord): Promise<SecAggServer> {
    const st = r.secagg!;
    const have = this.#servers.get(st.roundId);
    if (have) return have;
    const server = new SecAggServer({
      roundId: st.roundId, participants: st.participants, vectorLength: st.vectorLength, clipRange: st.clipRange,
      numShares: st.numShares, threshold: st.threshold, roundSeed: new Uint8Array(Buffer.from(st.roundSeed, 'base64')),
    });
    const seen = new Map<string, string>();
    const replay = async <T extends { stage: string; clientId: string }>(n: number, stage: keyof typeof SECAGG_STAGES, accept: (m: T) => void): Promise<void> => {
      const doc = await this.store.get(secaggStageKey(r.taskId, r.number, r.attempt, n));
      if (!doc) throw new FedmmError('DATA_LOSS', `the accepted messages of stage ${n} of secure round ${st.roundId} are missing from the store; the round cannot continue`);
      for (const a of JSON.parse(doc.value) as { from: string; payload: string }[]) {
        accept({ ...decodeSecAggMessage<T>(Buffer.from(a.payload, 'base64'), stage), clientId: a.from });
        seen.set(`${stage}/${a.from}`, a.payload);
      }
    };
    const order = ['setup', 'share-keys', 'collect-masked', 'unmask', 'done'];
    const at = order.indexOf(st.stage);
    if (at > 0) {
      await replay<SetupResponse>(0, 'setup', (m) => server.acceptSetup(m));
      server.closeSetup();
    }
    if (at > 1) {
      await replay<ShareKeysResponse>(1, 'share-keys', (m) => server.acceptShareKeys(m));
      server.closeShareKeys();
    }
    if (at > 2) {
      for (const s of st.survivors) server.acceptMaskedInput({ stage: 'collect-masked', roundId: st.roundId, clientId: s });
      server.closeCollection();
    }
    this.#servers.set(st.roundId, server);
    this.#seen.set(st.roundId, seen);
    this.log.info('secure aggregation: server state rebuilt from the store', { task: r.taskId, round: r.number, attempt: r.attempt, stage: st.stage });
    return server;
  }
}
