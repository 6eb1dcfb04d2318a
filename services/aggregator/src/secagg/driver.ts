import { randomBytes } from 'node:crypto';
import { FedmmError, isFedmmError, type Logger } from '@fedmm/core';
import { storeKey, type Store, type Write } from '@fedmm/store';
import {
  decodeSecAggMessage, encodeSecAggMessage, relayInboxParts, relayKeyParts, relayRoundParts, relayStageOf, ROUND_SEED_BYTES, SecAggServer,
  SECAGG_SERVER_PARTY, SECAGG_STAGES,
  type RelayEntry, type SetupResponse, type ShareKeysResponse, type UnmaskPlan, type UnmaskResponse,
} from '@fedmm/secagg';
import { groupSumPrefix, secaggPlanKey, secaggRoundPrefix, secaggStageKey } from '../domain/keys.js';
import type { RoundRecord, SecAggRoundState, TaskRecord } from '../domain/types.js';
import { drawGroups } from './groups.js';
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

/** Whether the round runs under secure aggregation (in one group or several). */
export function isSecureRound(r: Pick<RoundRecord, 'secagg' | 'secaggGroups'>): boolean {
  return r.secagg !== undefined || r.secaggGroups !== undefined;
}

/** The round's SecAgg+ instances: its groups, or the one instance over the whole round. */
export function secureGroups(r: Pick<RoundRecord, 'secagg' | 'secaggGroups'>): SecAggRoundState[] {
  return r.secaggGroups ?? (r.secagg ? [r.secagg] : []);
}

/** The instance a client belongs to (undefined if it is in none). */
export function groupOfClient(r: Pick<RoundRecord, 'secagg' | 'secaggGroups'>, tenant: string): SecAggRoundState | undefined {
  return secureGroups(r).find((g) => g.participants.includes(tenant));
}

/** The round with its instances replaced, in the field they came from. */
function withGroups(r: RoundRecord, groups: SecAggRoundState[]): RoundRecord {
  return r.secaggGroups ? { ...r, secaggGroups: groups } : { ...r, secagg: groups[0]! };
}

/** The clients whose masked input is in a sum the workers unmask: the survivors of the groups that finished. */
export function unmaskedSurvivors(r: Pick<RoundRecord, 'secagg' | 'secaggGroups'>): string[] {
  return secureGroups(r).filter((g) => g.stage === 'done').flatMap((g) => g.survivors).sort();
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
  /** Relay payloads already fed to a server, per instance and sender, so each is checked once. */
  readonly #seen = new Map<string, Map<string, string>>();

  constructor(private readonly store: Store, private readonly write: FencedWriter, private readonly log: Logger) {}

  /**
   * The protocol state of a new secure round: one instance over the selected clients, or, with
   * `secaggGroupSize`, one per group of a partition drawn now. Fails with FAILED_PRECONDITION when
   * the task's settings cannot form a valid round.
   */
  plan(task: TaskRecord, round: Pick<RoundRecord, 'taskId' | 'number' | 'attempt' | 'selected' | 'openedAt'>, vectorLength: number): Pick<RoundRecord, 'secagg' | 'secaggGroups'> {
    const p = task.privacy;
    const size = p.secaggGroupSize ?? 0;
    if (size === 0) return { secagg: this.#planGroup(task, round, round.selected, undefined, vectorLength) };
    const groups = drawGroups(round.selected, { size, threshold: p.secaggThreshold, numShares: p.secaggNumShares });
    return { secaggGroups: groups.map((g) => this.#planGroup(task, round, g.members, g.id, vectorLength)) };
  }

  #planGroup(task: TaskRecord, round: Pick<RoundRecord, 'taskId' | 'number' | 'attempt' | 'openedAt'>, participants: readonly string[], group: string | undefined, vectorLength: number): SecAggRoundState {
    const p = task.privacy;
    const input = {
      // The agent binds requests to `task/round/attempt`; each group is told apart by its own seed and participants, both in the round context every key derives from.
      roundId: `${round.taskId}/${round.number}/${round.attempt}`,
      participants,
      vectorLength,
      clipRange: p.clipNorm,
      // 0 = a complete graph (SecAgg as Bonawitz et al. describe it).
      numShares: p.secaggNumShares > 0 ? p.secaggNumShares : participants.length,
      threshold: p.secaggThreshold,
      roundSeed: randomBytes(ROUND_SEED_BYTES),
    };
    let server: SecAggServer;
    try {
      server = new SecAggServer(input);
    } catch (e) {
      const of = group === undefined ? `${participants.length} selected clients` : `group ${group} of ${participants.length} clients`;
      throw new FedmmError('FAILED_PRECONDITION', `round ${round.number} of task ${round.taskId} cannot run secure aggregation with ${of}: ${(e as Error).message}`);
    }
    const st: SecAggRoundState = {
      ...(group !== undefined ? { group } : {}),
      roundId: input.roundId, roundSeed: Buffer.from(input.roundSeed).toString('base64'), participants: [...server.config.participants],
      vectorLength, clipRange: input.clipRange, numShares: input.numShares, threshold: input.threshold,
      stage: 'setup', stageDeadlineAt: round.openedAt + secaggStageMs(task), joined: [], shared: [], survivors: [],
    };
    this.#servers.set(instanceKey(st), server);
    return st;
  }

  /** Sends stage 0 (the round configuration) to every selected client, each its own group's. */
  async sendSetup(r: RoundRecord): Promise<void> {
    for (const st of secureGroups(r)) {
      const server = await this.#server(r, st);
      const req = server.setupRequest();
      await this.#post(r, 0, st.participants.map((to) => ({ to, msg: req })));
    }
  }

  /** Advances the instances in setup or share-keys: each closes its stage when all its clients answered or at its sub-deadline. */
  async advanceSetup(task: TaskRecord, r: RoundRecord, now = Date.now()): Promise<SecAggStep> {
    let changed = false;
    const next: SecAggRoundState[] = [];
    for (const st of secureGroups(r)) {
      if (st.stage !== 'setup' && st.stage !== 'share-keys') {
        next.push(st);
        continue;
      }
      const after = await this.#guard(r, st, () => this.#advanceGroupSetup(task, r, st, now));
      changed ||= after !== st;
      next.push(after);
    }
    return this.#settle(r, next, changed);
  }

  async #advanceGroupSetup(task: TaskRecord, r: RoundRecord, st: SecAggRoundState, now: number): Promise<SecAggRoundState> {
    const server = await this.#server(r, st);
    const where = { task: r.taskId, round: r.number, attempt: r.attempt, ...(st.group !== undefined ? { group: st.group } : {}) };
    if (st.stage === 'setup') {
      const got = await this.#feed<SetupResponse>(r, st, 'setup', st.participants, (m) => server.acceptSetup(m));
      if (got.length < st.participants.length && now < st.stageDeadlineAt) return st;
      const requests = server.closeSetup();
      const joined = requests.map((q) => q.clientId);
      await this.#snapshot(r, st, 0, got.filter((g) => joined.includes(g.from)));
      await this.#post(r, 1, requests.map((q) => ({ to: q.clientId, msg: q })));
      this.log.info('secure aggregation: keys announced', { ...where, joined: joined.length, of: st.participants.length });
      return { ...st, stage: 'share-keys', joined, stageDeadlineAt: now + secaggStageMs(task) };
    }
    const got = await this.#feed<ShareKeysResponse>(r, st, 'share-keys', st.joined, (m) => server.acceptShareKeys(m));
    if (got.length < st.joined.length && now < st.stageDeadlineAt) return st;
    const requests = server.closeShareKeys();
    const shared = requests.map((q) => q.clientId);
    await this.#snapshot(r, st, 1, got.filter((g) => shared.includes(g.from)));
    await this.#post(r, 2, requests.map((q) => ({ to: q.clientId, msg: q })));
    this.log.info('secure aggregation: shares routed, collecting masked inputs', { ...where, shared: shared.length });
    // Collection lasts until the round's own deadline.
    return { ...st, stage: 'collect-masked', shared, stageDeadlineAt: r.deadlineAt };
  }

  /** Closes collection at seal: each instance's received uploads are its survivors; asks them for their shares (stage 3). */
  async closeCollection(task: TaskRecord, r: RoundRecord, now = Date.now()): Promise<SecAggStep> {
    const next: SecAggRoundState[] = [];
    for (const st of secureGroups(r)) {
      if (st.stage === 'failed') {
        next.push(st);
        continue;
      }
      next.push(await this.#guard(r, st, async () => {
        const server = await this.#server(r, st);
        if (st.stage !== 'collect-masked') {
          throw new FedmmError('FAILED_PRECONDITION', `round ${r.number} of task ${r.taskId} sealed while secure aggregation${st.group !== undefined ? ` in group ${st.group}` : ''} was still at stage '${st.stage}'; fewer than ${st.threshold} clients completed the key exchange`);
        }
        for (const u of r.received) {
          if (st.participants.includes(u.tenant)) server.acceptMaskedInput({ stage: 'collect-masked', roundId: st.roundId, clientId: u.tenant });
        }
        const requests = server.closeCollection();
        const survivors = requests.map((q) => q.clientId);
        await this.#post(r, 3, requests.map((q) => ({ to: q.clientId, msg: q })));
        return { ...st, stage: 'unmask', survivors, stageDeadlineAt: now + secaggStageMs(task) };
      }));
    }
    return this.#settle(r, next, true);
  }

  /** Stage 3: collects each instance's survivors' shares; when all answered or at the sub-deadline, unmasks and stores its plan. */
  async advanceUnmask(r: RoundRecord, now = Date.now()): Promise<SecAggStep> {
    let changed = false;
    const next: SecAggRoundState[] = [];
    for (const st of secureGroups(r)) {
      if (st.stage !== 'unmask') {
        next.push(st);
        continue;
      }
      const after = await this.#guard(r, st, async () => {
        const server = await this.#server(r, st);
        const got = await this.#feed<UnmaskResponse>(r, st, 'unmask', st.survivors, (m) => server.acceptUnmask(m));
        if (got.length < st.survivors.length && now < st.stageDeadlineAt) return st;
        const { plan } = await server.finish();
        await this.#storePlan(r, st, plan);
        this.#forget(st);
        this.log.info('secure aggregation: unmask plan ready', { task: r.taskId, round: r.number, attempt: r.attempt, ...(st.group !== undefined ? { group: st.group } : {}), survivors: plan.survivors.length, answered: got.length });
        return { ...st, stage: 'done' };
      });
      changed ||= after !== st;
      next.push(after);
    }
    const step = this.#settle(r, next, changed);
    if (step.kind !== 'fail' && next.every((g) => g.stage === 'done' || g.stage === 'failed')) return { kind: 'unmasked', round: withGroups(r, next) };
    return step;
  }

  /**
   * Deletes everything secret or stale of a round that ended: relay entries, snapshots, the plans.
   * A failed round's group sums go too; a published round keeps them for valuation, which deletes
   * them once it scored the round.
   */
  async cleanup(r: RoundRecord, options: { discardGroupSums?: boolean } = {}): Promise<void> {
    if (!isSecureRound(r)) return;
    for (const st of secureGroups(r)) this.#forget(st);
    const keys = [
      ...(await this.store.list(storeKey(...relayRoundParts(r.taskId, r.number)))).map((e) => e.key),
      ...(await this.store.list(secaggRoundPrefix(r.taskId, r.number, r.attempt))).map((e) => e.key),
      ...secureGroups(r).map((st) => secaggPlanKey(r.taskId, r.number, r.attempt, st.group)),
      ...(options.discardGroupSums && r.secaggGroups ? (await this.store.list(groupSumPrefix(r.taskId, r.number, r.attempt))).map((e) => e.key) : []),
    ];
    for (let i = 0; i < keys.length; i += 200) await this.write(keys.slice(i, i + 200).map((key) => ({ key, value: null })));
  }

  /**
   * The step after the instances moved: the round fails only when no instance is left (with one
   * instance, as soon as it fails); a failed group's members are dropouts of the round.
   */
  #settle(r: RoundRecord, next: SecAggRoundState[], changed: boolean): SecAggStep {
    if (next.every((g) => g.stage === 'failed')) {
      const reason = next.length === 1 ? next[0]!.failure! : `every group fell short: ${next.map((g) => `${g.group}: ${g.failure}`).join('; ')}`;
      return { kind: 'fail', reason: `secure aggregation failed: ${reason}` };
    }
    return changed ? { kind: 'update', round: withGroups(r, next) } : { kind: 'wait' };
  }

  /** Runs one instance's step; a protocol failure (too few clients, a bad share) fails the instance, anything else propagates. */
  async #guard(r: RoundRecord, st: SecAggRoundState, step: () => Promise<SecAggRoundState>): Promise<SecAggRoundState> {
    try {
      return await step();
    } catch (e) {
      if (!isFedmmError(e) || (e.code !== 'FAILED_PRECONDITION' && e.code !== 'DATA_LOSS')) throw e;
      this.#forget(st);
      if (st.group !== undefined) {
        this.log.warn('secure aggregation: a group fell short, its members count as dropouts', { task: r.taskId, round: r.number, attempt: r.attempt, group: st.group, members: st.participants.length, reason: e.message });
      }
      return { ...st, stage: 'failed', failure: e.message };
    }
  }

  #forget(st: SecAggRoundState): void {
    const key = instanceKey(st);
    this.#servers.get(key)?.abort('the round ended');
    this.#servers.delete(key);
    this.#seen.delete(key);
  }

  async #storePlan(r: RoundRecord, st: SecAggRoundState, plan: UnmaskPlan): Promise<void> {
    await this.write([{ key: secaggPlanKey(r.taskId, r.number, r.attempt, st.group), value: encodePlan(plan) }]);
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
   * Reads the responses addressed to the server at a stage from the instance's clients and feeds
   * each new one to its server. The sender is the relay entry's `from` (the gateway sets it from
   * the mTLS identity), never the body's clientId. A malformed or stale message is logged once and
   * ignored: that client counts as not having answered. Returns the responses accepted so far.
   */
  async #feed<T extends { stage: string; clientId: string }>(r: RoundRecord, st: SecAggRoundState, stage: keyof typeof SECAGG_STAGES, from: readonly string[], accept: (m: T) => void): Promise<{ from: string; payload: string }[]> {
    const key = instanceKey(st);
    let seen = this.#seen.get(key);
    if (!seen) this.#seen.set(key, (seen = new Map()));
    const accepted: { from: string; payload: string }[] = [];
    const entries = await this.store.list(storeKey(...relayInboxParts(r.taskId, r.number, relayStageOf(stage), SECAGG_SERVER_PARTY)));
    for (const e of entries) {
      const entry = JSON.parse(e.value) as RelayEntry;
      if (!from.includes(entry.from)) continue;
      const seenKey = `${stage}/${entry.from}`;
      const prior = seen.get(seenKey);
      if (prior === entry.payload) {
        accepted.push({ from: entry.from, payload: entry.payload });
        continue;
      }
      if (prior === `rejected:${entry.payload}`) continue;
      try {
        const msg = decodeSecAggMessage<T>(Buffer.from(entry.payload, 'base64'), stage);
        accept({ ...msg, clientId: entry.from });
        seen.set(seenKey, entry.payload);
        accepted.push({ from: entry.from, payload: entry.payload });
      } catch (err) {
        if (isFedmmError(err) && err.code === 'INVALID_ARGUMENT') {
          seen.set(seenKey, `rejected:${entry.payload}`);
          this.log.warn('secure aggregation: ignoring a message', { task: r.taskId, round: r.number, stage, from: entry.from, reason: err.message });
          continue;
        }
        throw err;
      }
    }
    return accepted;
  }

  async #snapshot(r: RoundRecord, st: SecAggRoundState, stage: number, accepted: { from: string; payload: string }[]): Promise<void> {
    await this.write([{ key: secaggStageKey(r.taskId, r.number, r.attempt, stage, st.group), value: JSON.stringify(accepted) }]);
  }

  /** The instance's server, rebuilt by replaying the snapshots of closed stages when this process does not hold it. */
  async #server(r: RoundRecord, st: SecAggRoundState): Promise<SecAggServer> {
    const key = instanceKey(st);
    const have = this.#servers.get(key);
    if (have) return have;
    const server = new SecAggServer({
      roundId: st.roundId, participants: st.participants, vectorLength: st.vectorLength, clipRange: st.clipRange,
      numShares: st.numShares, threshold: st.threshold, roundSeed: new Uint8Array(Buffer.from(st.roundSeed, 'base64')),
    });
    const seen = new Map<string, string>();
    const replay = async <T extends { stage: string; clientId: string }>(n: number, stage: keyof typeof SECAGG_STAGES, accept: (m: T) => void): Promise<void> => {
      const doc = await this.store.get(secaggStageKey(r.taskId, r.number, r.attempt, n, st.group));
      if (!doc) throw new FedmmError('DATA_LOSS', `the accepted messages of stage ${n} of secure round ${st.roundId}${st.group !== undefined ? ` (group ${st.group})` : ''} are missing from the store; the round cannot continue`);
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
    this.#servers.set(key, server);
    this.#seen.set(key, seen);
    if (at > 0) this.log.info('secure aggregation: server state rebuilt from the store', { task: r.taskId, round: r.number, attempt: r.attempt, ...(st.group !== undefined ? { group: st.group } : {}), stage: st.stage });
    return server;
  }
}

/** In-memory key of one SecAgg+ instance (the round id is shared by a round's groups). */
function instanceKey(st: SecAggRoundState): string {
  return `${st.roundId}#${st.group ?? ''}`;
}
