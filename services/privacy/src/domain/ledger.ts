import { randomInt } from 'node:crypto';
import { aborted, failedPrecondition, invalidArgument, KeyedMutex, notFound, resourceExhausted, sleep, type Logger } from '@fedmm/core';
import { epsilonFor, planNoise, type AccountantKind } from '@fedmm/dp';
import { getJson, listJson, updateJson, type Store } from '@fedmm/store';
import { accountEpsilon, addCommitted, composedEpsilon, groupByTenant } from './accounting.js';
import { accountKey, accountPrefix, parseReservationId, requireId, reservationId, reservationKey, reservationPrefix } from './ids.js';
import type {
  AccountDoc,
  BudgetView,
  CommittedEvent,
  LedgerEntry,
  MechanismEvent,
  ReservationDoc,
  ReservationState,
  ReservedEvent,
  ReserveInput,
  ReserveResult,
  Scope,
  TenantEpsilon,
} from './types.js';

export interface PrivacyLedgerOptions {
  /** Budget of accounts without an explicit one; undefined: unlimited (spend is still accounted). */
  readonly defaultEpsilon?: number;
  /** Delta of accounts created without a budget and without a delta in the request. */
  readonly defaultDelta: number;
  /** Called with a tenant's committed epsilon in a task after each commit (the epsilon-spent gauge). */
  readonly onSpent?: (tenant: string, taskId: string, epsilon: number) => void;
  readonly now?: () => number;
}

const MAX_ATTEMPTS = 200;
const CONFLICT = Symbol('conflict');
type Attempt<T> = T | typeof CONFLICT;

interface Loaded {
  doc: AccountDoc;
  version: number;
}

const fmt = (x: number): string => (Number.isFinite(x) ? String(Number(x.toPrecision(6))) : String(x));

/**
 * The privacy ledger: budgets per tenant and per task, and atomic reserve / commit / release of
 * each round's DP mechanism events. Budgets are checked by composing events with the accountant,
 * never by adding epsilons.
 */
export class PrivacyLedger {
  // Serialises one task's operations inside this process; the atomic batches make replicas safe.
  private readonly mutex = new KeyedMutex();
  private readonly now: () => number;

  constructor(private readonly store: Store, private readonly opts: PrivacyLedgerOptions, private readonly log: Logger) {
    this.now = opts.now ?? Date.now;
    if (opts.defaultEpsilon !== undefined && !(opts.defaultEpsilon > 0)) throw invalidArgument(`the default epsilon must be > 0, got ${opts.defaultEpsilon}`);
    requireDelta(opts.defaultDelta, 'the default delta');
  }

  /** Sets (or replaces) the budget of a tenant or a task; its recorded events are kept and re-evaluated. */
  async setBudget(input: { scope: Scope; id: string; epsilon: number; delta: number; accountant: AccountantKind }): Promise<BudgetView> {
    requireId(input.scope, input.id);
    if (!(Number.isFinite(input.epsilon) && input.epsilon > 0)) {
      throw invalidArgument(`the epsilon budget of ${input.scope} ${input.id} must be a finite number > 0, got ${input.epsilon}`);
    }
    requireDelta(input.delta, `the delta of ${input.scope} ${input.id}`);
    const res = await updateJson<AccountDoc>(this.store, accountKey(input.scope, input.id), (cur) => ({
      ...(cur ?? this.freshAccount(input.scope, input.id, input.delta, input.accountant)),
      epsilon: input.epsilon,
      delta: input.delta,
      accountant: input.accountant,
    }));
    this.log.info('privacy budget set', { scope: input.scope, id: input.id, epsilon: input.epsilon, delta: input.delta, accountant: input.accountant });
    return this.view(res!.value);
  }

  /** The budget of a tenant or task with its spent and reserved epsilon; unknown ids have nothing spent. */
  async getBudget(scope: Scope, id: string): Promise<BudgetView> {
    requireId(scope, id);
    return this.view((await this.loadAccount(scope, id, this.opts.defaultDelta, 'rdp')).doc);
  }

  /**
   * Reserves a round's events against the task budget and every affected tenant budget, all or
   * nothing. A retry with the same (task, round, attempt) returns the same reservation.
   */
  async reserve(input: ReserveInput): Promise<ReserveResult> {
    requireId('task', input.taskId);
    requireRoundNumber('round', input.round);
    requireRoundNumber('attempt', input.attempt);
    const events = validateEvents(input.events, 'reserve');
    if (events.length === 0) throw invalidArgument(`reserving round ${input.round} of task ${input.taskId} needs at least one mechanism event`);
    const delta = input.delta || this.opts.defaultDelta;
    requireDelta(delta, 'the delta of the reservation');
    const accountant = input.accountant ?? 'rdp';
    const id = reservationId(input.taskId, input.round, input.attempt);
    const resKey = reservationKey(input.taskId, input.round, input.attempt);
    return this.mutex.run(input.taskId, () =>
      this.retrying(`reserving ${id}`, async (): Promise<Attempt<ReserveResult>> => {
        const existing = await getJson<ReservationDoc>(this.store, resKey);
        if (existing) return replayReserve(existing.value, events);
        const task = await this.loadAccount('task', input.taskId, delta, accountant);
        const tenants = [...groupByTenant(events).keys()];
        const tenantAccounts = await Promise.all(tenants.map((t) => this.loadAccount('tenant', t, delta, accountant)));
        const added: ReservedEvent[] = events.map((e) => ({ ...e, task: input.taskId, reservationId: id }));

        this.requireWithinBudget(task.doc, [...task.doc.committed, ...task.doc.reserved, ...added], input);
        tenantAccounts.forEach((acc) => {
          const mine = added.filter((e) => e.tenant === acc.doc.id);
          this.requireWithinBudget(acc.doc, [...acc.doc.committed, ...acc.doc.reserved, ...mine], input);
        });

        const reserved: Record<string, TenantEpsilon> = {};
        for (const [tenant, mine] of groupByTenant(added)) {
          const committed = task.doc.committed.filter((e) => e.tenant === tenant);
          reserved[tenant] = {
            own: composedEpsilon(mine, task.doc.delta, task.doc.accountant),
            cumulative: composedEpsilon([...committed, ...mine], task.doc.delta, task.doc.accountant),
          };
        }
        const doc: ReservationDoc = { id, taskId: input.taskId, round: input.round, attempt: input.attempt, state: 'reserved', events, reservedAt: this.now(), reserved };
        const accounts = [task, ...tenantAccounts].map((acc) => ({
          ...acc,
          next: { ...acc.doc, reserved: [...acc.doc.reserved, ...added.filter((e) => acc.doc.scope === 'task' || e.tenant === acc.doc.id)] },
        }));
        const ok = await this.store.atomic(
          [...accounts.map((a) => ({ key: accountKey(a.doc.scope, a.doc.id), version: a.version })), { key: resKey, version: 0 }],
          [...accounts.map((a) => ({ key: accountKey(a.doc.scope, a.doc.id), value: JSON.stringify(a.next) })), { key: resKey, value: JSON.stringify(doc) }],
        );
        if (!ok) return CONFLICT;
        this.log.info('privacy spend reserved', { reservation: id, tenants: tenants.length });
        return { reservationId: id, epsilonByTenant: cumulativeOf(reserved) };
      }),
    );
  }

  /**
   * Commits a reservation after its round was published. `actual` replaces the reserved events
   * (e.g. after dropouts) and must not exceed them; empty commits what was reserved.
   */
  async commit(id: string, actual: readonly MechanismEvent[] = []): Promise<Record<string, number>> {
    const { taskId, round, attempt } = parseReservationId(id);
    const given = validateEvents(actual, 'commit');
    const resKey = reservationKey(taskId, round, attempt);
    const result = await this.mutex.run(taskId, () =>
      this.retrying(`committing ${id}`, async (): Promise<Attempt<{ eps: Record<string, number>; fresh: boolean }>> => {
        const cur = await getJson<ReservationDoc>(this.store, resKey);
        if (!cur) throw notFound(`reservation ${id} does not exist; reserve the round first and commit the id Reserve returned`);
        const res = cur.value;
        if (res.state === 'released') {
          throw failedPrecondition(`reservation ${id} was released${res.reason ? ` (${res.reason})` : ''} and cannot be committed; reserve the round again with a new attempt number`);
        }
        if (res.state === 'committed') {
          if (given.length > 0 && !sameEvents(given, res.committedEvents ?? res.events)) {
            throw failedPrecondition(`reservation ${id} is already committed with other events; a commit cannot be changed`);
          }
          return { eps: cumulativeOf(res.committed ?? {}), fresh: false };
        }
        const events = given.length > 0 ? given : res.events;
        requireWithinReservation(id, res.events, events);

        const task = await this.loadAccount('task', taskId, this.opts.defaultDelta, 'rdp');
        const tenants = [...groupByTenant(res.events).keys()];
        const tenantAccounts = await Promise.all(tenants.map((t) => this.loadAccount('tenant', t, this.opts.defaultDelta, 'rdp')));
        const add: CommittedEvent[] = events.map((e) => ({ ...e, task: taskId }));
        const accounts = [task, ...tenantAccounts].map((acc) => ({
          ...acc,
          next: {
            ...acc.doc,
            reserved: acc.doc.reserved.filter((e) => e.reservationId !== id),
            committed: addCommitted(acc.doc.committed, add.filter((e) => acc.doc.scope === 'task' || e.tenant === acc.doc.id)),
          },
        }));
        const committedInTask = accounts[0]!.next.committed;
        const committed: Record<string, TenantEpsilon> = {};
        for (const tenant of tenants) {
          committed[tenant] = {
            own: composedEpsilon(events.filter((e) => e.tenant === tenant), task.doc.delta, task.doc.accountant),
            cumulative: composedEpsilon(committedInTask.filter((e) => e.tenant === tenant), task.doc.delta, task.doc.accountant),
          };
        }
        const next: ReservationDoc = { ...res, state: 'committed', committedEvents: events, committedAt: this.now(), committed };
        const ok = await this.store.atomic(
          [...accounts.map((a) => ({ key: accountKey(a.doc.scope, a.doc.id), version: a.version })), { key: resKey, version: cur.version }],
          [...accounts.map((a) => ({ key: accountKey(a.doc.scope, a.doc.id), value: JSON.stringify(a.next) })), { key: resKey, value: JSON.stringify(next) }],
        );
        if (!ok) return CONFLICT;
        this.log.info('privacy spend committed', { reservation: id, tenants: tenants.length });
        return { eps: cumulativeOf(committed), fresh: true };
      }),
    );
    if (result.fresh) for (const [tenant, eps] of Object.entries(result.eps)) this.opts.onSpent?.(tenant, taskId, eps);
    return result.eps;
  }

  /** Releases a reservation whose round failed; releasing twice is a no-op, releasing a committed one is refused. */
  async release(id: string, reason: string): Promise<void> {
    const { taskId, round, attempt } = parseReservationId(id);
    const resKey = reservationKey(taskId, round, attempt);
    await this.mutex.run(taskId, () =>
      this.retrying(`releasing ${id}`, async (): Promise<Attempt<void>> => {
        const cur = await getJson<ReservationDoc>(this.store, resKey);
        if (!cur) throw notFound(`reservation ${id} does not exist; nothing to release`);
        const res = cur.value;
        if (res.state === 'released') return;
        if (res.state === 'committed') throw failedPrecondition(`reservation ${id} is committed: its round was published and the spend cannot be released`);
        const task = await this.loadAccount('task', taskId, this.opts.defaultDelta, 'rdp');
        const tenants = [...groupByTenant(res.events).keys()];
        const tenantAccounts = await Promise.all(tenants.map((t) => this.loadAccount('tenant', t, this.opts.defaultDelta, 'rdp')));
        const accounts = [task, ...tenantAccounts].map((acc) => ({ ...acc, next: { ...acc.doc, reserved: acc.doc.reserved.filter((e) => e.reservationId !== id) } }));
        const released: Record<string, TenantEpsilon> = {};
        for (const tenant of tenants) {
          released[tenant] = {
            own: res.reserved[tenant]?.own ?? 0,
            cumulative: composedEpsilon(task.doc.committed.filter((e) => e.tenant === tenant), task.doc.delta, task.doc.accountant),
          };
        }
        const next: ReservationDoc = { ...res, state: 'released', releasedAt: this.now(), released, reason };
        const ok = await this.store.atomic(
          [...accounts.map((a) => ({ key: accountKey(a.doc.scope, a.doc.id), version: a.version })), { key: resKey, version: cur.version }],
          [...accounts.map((a) => ({ key: accountKey(a.doc.scope, a.doc.id), value: JSON.stringify(a.next) })), { key: resKey, value: JSON.stringify(next) }],
        );
        if (!ok) return CONFLICT;
        this.log.info('privacy reservation released', { reservation: id, reason });
      }),
    );
  }

  /**
   * Ledger entries (reserved, committed, released) of a task and/or tenant, oldest first, with the
   * committed epsilon per tenant: in the task when a task is named, else across all the tenant's tasks.
   */
  async ledger(filter: { taskId?: string; tenant?: string }): Promise<{ entries: LedgerEntry[]; epsilonByTenant: Record<string, number> }> {
    if (filter.taskId) requireId('task', filter.taskId);
    if (filter.tenant) requireId('tenant', filter.tenant);
    const reservations = (await listJson<ReservationDoc>(this.store, reservationPrefix(filter.taskId))).map((e) => e.value);
    const entries: LedgerEntry[] = [];
    for (const res of reservations) {
      for (const [tenant, reservedEvents] of groupByTenant(res.events)) {
        if (filter.tenant && tenant !== filter.tenant) continue;
        const entry = (state: ReservationState, time: number, eps: TenantEpsilon | undefined, events: MechanismEvent[]): void => {
          entries.push({
            reservationId: res.id,
            taskId: res.taskId,
            round: res.round,
            attempt: res.attempt,
            tenant,
            epsilon: eps?.own ?? 0,
            cumulativeEpsilon: eps?.cumulative ?? 0,
            state,
            timeUnixMs: time,
            events,
            reason: state === 'released' ? (res.reason ?? '') : '',
          });
        };
        entry('reserved', res.reservedAt, res.reserved[tenant], reservedEvents);
        if (res.state === 'committed') entry('committed', res.committedAt ?? res.reservedAt, res.committed?.[tenant], (res.committedEvents ?? []).filter((e) => e.tenant === tenant));
        if (res.state === 'released') entry('released', res.releasedAt ?? res.reservedAt, res.released?.[tenant], reservedEvents);
      }
    }
    const stateOrder: Record<ReservationState, number> = { reserved: 0, committed: 1, released: 1 };
    entries.sort((a, b) => a.timeUnixMs - b.timeUnixMs || a.taskId.localeCompare(b.taskId) || a.round - b.round || a.attempt - b.attempt || stateOrder[a.state] - stateOrder[b.state] || a.tenant.localeCompare(b.tenant));
    return { entries, epsilonByTenant: await this.committedByTenant(filter) };
  }

  /** Reports each tenant's committed epsilon per task to onSpent (fills the gauge after a restart). */
  async publishSpent(): Promise<void> {
    if (!this.opts.onSpent) return;
    for (const { value: task } of await listJson<AccountDoc>(this.store, accountPrefix('task'))) {
      for (const [tenant, events] of groupByTenant(task.committed)) this.opts.onSpent(tenant, task.id, composedEpsilon(events, task.delta, task.accountant));
    }
  }

  /** Epsilon of `steps` rounds of the subsampled Gaussian, offline. */
  computeEpsilon(p: { samplingRate: number; noiseMultiplier: number; steps: number; delta: number; accountant: AccountantKind }): number {
    return epsilonFor(p);
  }

  /** Noise multiplier that meets (epsilon, delta) for the schedule, offline. */
  planNoise(p: { epsilon: number; delta: number; samplingRate: number; steps: number; accountant: AccountantKind }): number {
    return planNoise(p);
  }

  private async committedByTenant(filter: { taskId?: string; tenant?: string }): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    if (filter.taskId) {
      const task = (await this.loadAccount('task', filter.taskId, this.opts.defaultDelta, 'rdp')).doc;
      for (const [tenant, events] of groupByTenant(task.committed)) {
        if (!filter.tenant || tenant === filter.tenant) out[tenant] = composedEpsilon(events, task.delta, task.accountant);
      }
      return out;
    }
    const accounts = filter.tenant
      ? [(await this.loadAccount('tenant', filter.tenant, this.opts.defaultDelta, 'rdp')).doc]
      : (await listJson<AccountDoc>(this.store, accountPrefix('tenant'))).map((e) => e.value);
    for (const acc of accounts) out[acc.id] = accountEpsilon(acc, acc.committed);
    return out;
  }

  private requireWithinBudget(doc: AccountDoc, events: readonly CommittedEvent[], input: ReserveInput): void {
    const limit = this.limitOf(doc);
    if (limit === Number.POSITIVE_INFINITY) return;
    const eps = accountEpsilon(doc, events);
    if (eps <= limit) return;
    const spent = accountEpsilon(doc, doc.committed);
    const source = doc.epsilon !== undefined ? 'its budget' : 'the service default budget (FEDMM_PRIVACY_DEFAULT_EPSILON)';
    throw resourceExhausted(
      `round ${input.round} (attempt ${input.attempt}) of task ${input.taskId} would bring ${doc.scope} ${doc.id} to epsilon ${fmt(eps)} ` +
        `at delta ${doc.delta} (${doc.accountant}), above ${source} of ${fmt(limit)}; ${fmt(spent)} is committed and ` +
        `${doc.reserved.length} event(s) are held by open reservations. Raise the budget (fedmm privacy budget set), ` +
        `or use more noise, fewer steps or a lower sampling rate`,
      { scope: doc.scope, id: doc.id, epsilon: eps, budget: limit, delta: doc.delta },
    );
  }

  private limitOf(doc: AccountDoc): number {
    return doc.epsilon ?? this.opts.defaultEpsilon ?? Number.POSITIVE_INFINITY;
  }

  private view(doc: AccountDoc): BudgetView {
    const spent = accountEpsilon(doc, doc.committed);
    const withReserved = doc.reserved.length > 0 ? accountEpsilon(doc, [...doc.committed, ...doc.reserved]) : spent;
    return {
      scope: doc.scope,
      id: doc.id,
      epsilon: this.limitOf(doc),
      delta: doc.delta,
      accountant: doc.accountant,
      explicit: doc.epsilon !== undefined,
      spentEpsilon: spent,
      reservedEpsilon: Math.max(0, withReserved - spent),
    };
  }

  private freshAccount(scope: Scope, id: string, delta: number, accountant: AccountantKind): AccountDoc {
    return { scope, id, delta, accountant, committed: [], reserved: [] };
  }

  private async loadAccount(scope: Scope, id: string, delta: number, accountant: AccountantKind): Promise<Loaded> {
    const doc = await getJson<AccountDoc>(this.store, accountKey(scope, id));
    return doc ? { doc: doc.value, version: doc.version } : { doc: this.freshAccount(scope, id, delta, accountant), version: 0 };
  }

  private async retrying<T>(what: string, attempt: () => Promise<Attempt<T>>): Promise<T> {
    for (let i = 0; i < MAX_ATTEMPTS; i += 1) {
      const r = await attempt();
      if (r !== CONFLICT) return r;
      // Jittered backoff so replicas contending for one account make progress.
      await sleep(randomInt(0, 2 + Math.min(i, 20) * 3));
    }
    throw aborted(`${what}: another replica kept changing the same budgets (${MAX_ATTEMPTS} attempts); retry the call`);
  }
}

/** Re-answers a retried Reserve from the stored reservation. */
function replayReserve(res: ReservationDoc, events: readonly MechanismEvent[]): ReserveResult {
  if (!sameEvents(events, res.events)) {
    throw failedPrecondition(`reservation ${res.id} already exists with other events; a new reservation for this round needs a new attempt number`);
  }
  if (res.state === 'released') {
    throw failedPrecondition(`reservation ${res.id} was released${res.reason ? ` (${res.reason})` : ''}; reserve the round again with a new attempt number`);
  }
  return { reservationId: res.id, epsilonByTenant: cumulativeOf(res.reserved) };
}

function cumulativeOf(m: Record<string, TenantEpsilon>): Record<string, number> {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v.cumulative]));
}

function sameEvents(a: readonly MechanismEvent[], b: readonly MechanismEvent[]): boolean {
  return a.length === b.length && a.every((e, i) => {
    const o = b[i]!;
    return e.tenant === o.tenant && e.samplingRate === o.samplingRate && e.noiseMultiplier === o.noiseMultiplier && e.steps === o.steps;
  });
}

/**
 * Actual events fit a reservation when, tenant by tenant, the i-th actual event is no more costly
 * than the i-th reserved one: sampling rate and steps no larger, noise no smaller. Epsilon is
 * monotone in each, so the committed spend never exceeds what was checked against the budgets.
 */
function requireWithinReservation(id: string, reserved: readonly MechanismEvent[], actual: readonly MechanismEvent[]): void {
  const byTenant = groupByTenant(reserved);
  for (const [tenant, events] of groupByTenant(actual)) {
    const held = byTenant.get(tenant);
    if (!held) throw failedPrecondition(`commit of ${id} names tenant ${tenant}, which the reservation does not cover; reserve a new attempt that includes it`);
    if (events.length > held.length) throw failedPrecondition(`commit of ${id} has ${events.length} events for tenant ${tenant}, the reservation ${held.length}; commit at most what was reserved`);
    events.forEach((e, i) => {
      const r = held[i]!;
      if (e.samplingRate > r.samplingRate || e.steps > r.steps || e.noiseMultiplier < r.noiseMultiplier) {
        throw failedPrecondition(
          `commit of ${id} exceeds the reservation for tenant ${tenant}: event ${i} has sampling rate ${e.samplingRate}, noise ${e.noiseMultiplier}, ` +
            `${e.steps} steps against ${r.samplingRate}, ${r.noiseMultiplier}, ${r.steps} reserved; commit at most what was reserved`,
        );
      }
    });
  }
}

function validateEvents(events: readonly MechanismEvent[], what: string): MechanismEvent[] {
  return events.map((e, i) => {
    const where = `${what}: event ${i}${e.tenant ? ` (tenant ${e.tenant})` : ''}`;
    if (!e.tenant) throw invalidArgument(`${where} names no tenant; every mechanism event protects one tenant's data`);
    requireId('tenant', e.tenant);
    if (!(Number.isFinite(e.samplingRate) && e.samplingRate > 0 && e.samplingRate <= 1)) {
      throw invalidArgument(`${where}: sampling_rate must be in (0, 1], got ${e.samplingRate}; use batch size / dataset size, or clients per round / population`);
    }
    if (!(Number.isFinite(e.noiseMultiplier) && e.noiseMultiplier > 0)) {
      throw invalidArgument(`${where}: noise_multiplier must be a finite number > 0, got ${e.noiseMultiplier}; without noise no budget can hold`);
    }
    if (!(Number.isSafeInteger(e.steps) && e.steps >= 1)) throw invalidArgument(`${where}: steps must be an integer >= 1, got ${e.steps}`);
    return { tenant: e.tenant, samplingRate: e.samplingRate, noiseMultiplier: e.noiseMultiplier, steps: e.steps };
  });
}

function requireRoundNumber(name: string, v: number): void {
  if (!(Number.isSafeInteger(v) && v >= 0)) throw invalidArgument(`${name} must be a non-negative integer, got ${v}`);
}

function requireDelta(delta: number, what: string): void {
  if (!(Number.isFinite(delta) && delta > 0 && delta < 1)) throw invalidArgument(`${what} must be in (0, 1), got ${delta}; e.g. 1e-5 or less than 1/(records per tenant)`);
}
