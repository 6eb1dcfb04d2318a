import { FedmmError, isFedmmError, sleep, type Logger } from '@fedmm/core';
import { Topics, type Bus, type OutgoingMessage } from '@fedmm/bus';
import { getJson, storeKey, type Store } from '@fedmm/store';
import {
  MAX_STREAM_CHUNK_BYTES, RECORD_KIND_HEADER, ResumableSha256, VERDICT_HEADERS, crc32c, encodeMaskedChunk, encodeUpdateChunk, encodeVerdict, sha256Hex,
  type Sha256State,
} from '@fedmm/tensor';
import { planMaskedUpload } from './masked-upload.js';
import { UpdateDecoder, type FilledRecord } from './update-decoder.js';
import { planUpdate, type UpdatePlan } from './update-plan.js';
import type { AggregatorPort, UploadChunkInfo, UploadHeaderInfo, UploadMessage, UploadPolicy, UploadResult, UploadStatus } from './types.js';

export interface UploadsOptions {
  readonly instanceId: string;
  /** A session nobody touched for this long is dropped (and its shards rejected). */
  readonly idleMs: number;
  /** Decoded bytes one upload may have in flight to the bus. */
  readonly windowBytes: number;
  readonly log: Logger;
  /** How long a gateway's hold on an upload with a stream attached lasts between renewals (default 10 s). */
  readonly leaseMs?: number;
  readonly now?: () => number;
}

/** Where an upload can continue: every chunk before `offset` is acknowledged by Kafka, nothing after it is assumed. */
interface Checkpoint {
  readonly offset: number;
  /** sha256 state after the payload's first `offset` bytes. */
  readonly sha256: Sha256State;
  /** Sum of squares of the values before `offset`. */
  readonly sumSquares: number;
}

/**
 * One upload in the store: its progress for GetUploadStatus, who holds it, and what any gateway
 * needs to continue it at `bytesReceived`. Written only with compare-and-set, so a gateway that
 * lost the session to another cannot overwrite it.
 */
interface SessionRecord {
  /** The gateway that holds (or last held) the session. */
  instance: string;
  /** The holder may publish chunks until then; 0 when no stream is attached (any gateway may take it at once). */
  leaseUntil: number;
  /** A gateway that asked the holder to let go (a client resumed through it). */
  takeover?: string;
  size: number;
  bytesReceived: number;
  complete: boolean;
  rejected?: string;
  /** Last client activity, for idle expiry. */
  updatedAt: number;
  /** sha256 of the header's canonical form: a resume must send the same header. */
  identity?: string;
  attempt?: number;
  resume?: { sha256: Sha256State; sumSquares: number; fingerprint: string; shardElements: number };
}

/** The one accepted update of a tenant in a round attempt; claimed before the accept verdicts go out. */
interface AcceptedRecord {
  uploadId: string;
  sha256: string;
  phase: 'claimed' | 'verdicts' | 'reported';
  claimedAt: number;
  shards: number;
}

/** A claim that never reached its verdicts (its gateway died while finishing) stops blocking after this. */
const STALE_CLAIM_MS = 5 * 60_000;
/** A lapsed lease counts as given up only this much later, for clock skew between gateways. */
const LEASE_GRACE_MS = 2000;
/** Progress is written to the store at most this often while chunks are acknowledged. */
const PROGRESS_EVERY_MS = 1000;
const part = (s: string | number): string => encodeURIComponent(String(s));

class UploadSession {
  readonly decoder: UpdateDecoder;
  /** The last checkpoint whose chunks (and all before) the bus has acknowledged. */
  checkpoint: Checkpoint;
  /** Offset of the checkpoint last written to the store: what any gateway resumes from. */
  durable: number;
  /** Store version of the session record this process last wrote or claimed. */
  version = 0;
  /** This process may publish until then (renewed while a stream is attached). */
  leaseUntil = 0;
  /** The session moved to another gateway (or was dropped): this copy must not act any more. */
  lost = false;
  /** Another gateway asked for the session: let go when the stream is off. */
  handoff = false;
  /** Store writes of this session, one at a time (compare-and-set on `version`). */
  persisting: Promise<void> = Promise.resolve();
  state: 'open' | 'finishing' | 'complete' | 'rejected' = 'open';
  rejection: FedmmError | undefined;
  /** A publish failed: the session's decoded state is ahead of the bus and cannot be trusted. */
  failure: unknown;
  readonly touched = new Set<number>();
  /** Resolves when every batch so far is acknowledged; never rejects (failures land in `failure`). */
  ackTail: Promise<void> = Promise.resolve();
  readonly inflight: { done: Promise<void>; bytes: number }[] = [];
  inflightBytes = 0;
  holder: { abort: AbortController; released: Promise<void> } | undefined;
  lastActivity: number;
  lastMirror = 0;
  digest: string | undefined;
  norm = 0;
  verdictsPublished = false;

  constructor(
    readonly key: string,
    readonly tenant: string,
    readonly header: UploadHeaderInfo,
    readonly policy: UploadPolicy,
    readonly plan: UpdatePlan,
    readonly hash: ResumableSha256,
    from: Checkpoint,
    now: number,
  ) {
    this.decoder = new UpdateDecoder(plan, from);
    this.checkpoint = from;
    this.durable = from.offset;
    // Chunks before the checkpoint went out through whichever gateway held the session then.
    for (const r of plan.records) if (r.byteEnd <= from.offset) this.touched.add(r.shard);
    this.lastActivity = now;
  }

  result(): UploadResult {
    const complete = this.state === 'complete';
    return { uploadId: this.header.uploadId, bytesReceived: complete ? this.header.size : this.durable, complete, shards: this.plan.shards.length };
  }
}

/** sha256 of the header fields a resume must repeat (tensor order does not matter). */
function uploadIdentity(h: UploadHeaderInfo): string {
  const tensors = [...h.tensors].sort((x, y) => (x.name < y.name ? -1 : 1)).map((t) => [t.name, t.dtype, t.shape, t.scale ?? 0]);
  return sha256Hex(JSON.stringify([h.sha256, h.size, h.numExamples, tensors]));
}

/** Races an iterator's next() against an abort, so a stalled transport cannot pin a session. */
async function* abortable<T>(it: AsyncIterator<T>, signal: AbortSignal): AsyncGenerator<T> {
  const reason = (): FedmmError => (isFedmmError(signal.reason) ? signal.reason : new FedmmError('ABORTED', 'the client cancelled the upload stream; resume it from GetUploadStatus'));
  for (;;) {
    if (signal.aborted) throw reason();
    // A fresh listener per message: racing one long-lived promise would keep every message reachable.
    let onAbort!: () => void;
    const aborted = new Promise<never>((_, reject) => (onAbort = () => reject(reason())));
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const r = await Promise.race([it.next(), aborted]);
      if (r.done) return;
      yield r.value;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }
}

/**
 * Upload sessions of this gateway: validates each update against the round's policy, streams it
 * into Kafka shard by shard with bounded memory, acknowledges bytes only once the bus holds
 * everything derived from them, and closes it with one verdict per touched shard.
 */
export class Uploads {
  readonly #sessions = new Map<string, UploadSession>();
  readonly #now: () => number;
  readonly #sweeper: NodeJS.Timeout;
  readonly #leaseMs: number;

  constructor(private readonly bus: Bus, private readonly store: Store, private readonly aggregator: AggregatorPort, private readonly opts: UploadsOptions) {
    this.#now = opts.now ?? Date.now;
    this.#leaseMs = opts.leaseMs ?? 10_000;
    this.#sweeper = setInterval(() => void this.sweep().catch((err: unknown) => opts.log.warn('upload session sweep failed', { err })), Math.min(30_000, Math.max(1000, opts.idleMs / 4)));
    this.#sweeper.unref();
  }

  /** Runs one UploadUpdate stream of `tenant`: header first, then chunks. `throttle` charges bandwidth. */
  async upload(tenant: string, messages: AsyncIterable<UploadMessage>, signal: AbortSignal, throttle: (bytes: number) => Promise<void> = async () => {}): Promise<UploadResult> {
    const it = messages[Symbol.asyncIterator]();
    const first = await it.next();
    if (first.done || !('header' in first.value)) {
      throw new FedmmError('INVALID_ARGUMENT', 'the first message of an upload must be its header; send the header, then the chunks');
    }
    const opened = await this.#open(tenant, first.value.header);
    if (!(opened instanceof UploadSession)) return opened;
    const session = opened;
    const { signal: held, release } = await this.#attach(session, signal);
    try {
      for await (const msg of abortable(it, held)) {
        session.lastActivity = this.#now();
        if ('header' in msg) throw new FedmmError('INVALID_ARGUMENT', 'the upload header was sent twice; send it once, first');
        await throttle(msg.chunk.data.length);
        await this.#receive(session, msg.chunk);
      }
      await this.#drain(session);
      if (session.decoder.processed < session.header.size) {
        await this.#persist(session, true);
        return session.result();
      }
      return await this.#finish(session);
    } catch (e) {
      // Aborts, corrupt chunks and gaps leave the session resumable; a publish failure does not.
      if (!session.lost && session.state !== 'rejected' && session.failure !== undefined) await this.#reject(session, this.#busFailure(session)).catch(() => undefined);
      throw e;
    } finally {
      // Whatever is in flight settles first, so the released record names the offset of every acknowledged chunk.
      while (session.inflight.length > 0) await this.#awaitOldest(session);
      release();
      if (!session.lost) {
        await this.#persist(session, true).catch((err: unknown) => this.opts.log.warn('cannot record the upload\'s progress', { upload: session.header.uploadId, err }));
        if (session.handoff && !session.holder) this.#forget(session);
      }
    }
  }

  /** Where an upload stands, as stored (so any gateway answers alike): the resume offset, whether it completed, its size. */
  async status(tenant: string, taskId: string, round: number, uploadId: string): Promise<UploadStatus> {
    const s = this.#sessions.get(this.#key(tenant, taskId, round, uploadId));
    if (s?.state === 'rejected') throw new FedmmError('FAILED_PRECONDITION', `upload ${uploadId} was rejected: ${s.rejection?.message ?? 'unknown reason'}; start over with a new upload id`);
    const p = await getJson<SessionRecord>(this.store, this.#progressKey(tenant, taskId, round, uploadId));
    if (!p) {
      throw new FedmmError('NOT_FOUND', `no upload ${JSON.stringify(uploadId)} of tenant ${tenant} for round ${round} of task ${taskId} is known; start it with UploadUpdate from offset 0`);
    }
    if (p.value.rejected) throw new FedmmError('FAILED_PRECONDITION', `upload ${uploadId} was rejected: ${p.value.rejected}; start over with a new upload id`);
    if (p.value.complete) return { bytesReceived: p.value.size, complete: true, size: p.value.size };
    // A record without resume state (written by an older gateway) cannot be continued: start over.
    return { bytesReceived: p.value.resume ? p.value.bytesReceived : 0, complete: false, size: p.value.size };
  }

  /** Drops idle sessions; open ones this gateway still holds get reject verdicts so workers free their pending chunks. */
  async sweep(): Promise<void> {
    const now = this.#now();
    for (const s of [...this.#sessions.values()]) {
      if (s.holder || now - s.lastActivity < this.opts.idleMs) continue;
      this.#drop(s);
      if (s.state !== 'open' && s.state !== 'finishing') continue;
      // Hold the session while rejecting it, so no other gateway resumes it meanwhile.
      await this.#persist(s, true, true).catch(() => undefined);
      if (s.lost || s.leaseUntil <= this.#now()) continue;
      this.opts.log.info('upload session expired', { tenant: s.tenant, task: s.header.taskId, round: s.header.round, upload: s.header.uploadId, bytes: s.checkpoint.offset });
      await this.#reject(s, new FedmmError('DEADLINE_EXCEEDED', `upload ${s.header.uploadId} was idle for more than ${Math.round(this.opts.idleMs / 1000)} s and expired`)).catch(() => undefined);
    }
  }

  /** Sessions held in memory now. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Stops the expiry timer and ends the attached streams; resolves once their sessions are released in the store for another gateway. */
  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    const released: Promise<void>[] = [];
    for (const s of this.#sessions.values()) {
      if (!s.holder) continue;
      released.push(s.holder.released);
      s.holder.abort.abort(new FedmmError('UNAVAILABLE', 'the gateway is shutting down; resume the upload (GetUploadStatus) through another gateway'));
    }
    await Promise.all(released);
    await Promise.all([...this.#sessions.values()].map((s) => s.persisting));
  }

  #key(tenant: string, taskId: string, round: number, uploadId: string): string {
    return JSON.stringify([tenant, taskId, round, uploadId]);
  }

  #progressKey(tenant: string, taskId: string, round: number, uploadId: string): string {
    return storeKey('gateway', 'upload', part(taskId), round, part(tenant), part(uploadId));
  }

  #acceptedKey(taskId: string, round: number, attempt: number, tenant: string): string {
    return storeKey('gateway', 'accepted', part(taskId), round, attempt, part(tenant));
  }

  /** This process stops acting for the session: another gateway holds it. */
  #forget(session: UploadSession): void {
    this.#drop(session);
    if (session.state === 'open' || session.state === 'finishing') session.lost = true;
  }

  #drop(session: UploadSession): void {
    if (this.#sessions.get(session.key) === session) this.#sessions.delete(session.key);
  }

  async #open(tenant: string, header: UploadHeaderInfo): Promise<UploadSession | UploadResult> {
    const policy = await this.aggregator.getUploadPolicy(header.taskId, header.round, tenant);
    const key = this.#key(tenant, header.taskId, header.round, header.uploadId);
    const progressKey = this.#progressKey(tenant, header.taskId, header.round, header.uploadId);
    const identity = uploadIdentity(header);
    const anotherHeader = (): FedmmError => new FedmmError('INVALID_ARGUMENT', `upload ${header.uploadId} was started with another header (sha256, size, tensors or num_examples differ); resume with the same header or start a new upload id`);
    let existing = this.#sessions.get(key);
    if (existing && uploadIdentity(existing.header) !== identity) throw anotherHeader();
    if (existing?.state === 'rejected') {
      throw new FedmmError('FAILED_PRECONDITION', `upload ${header.uploadId} was rejected: ${existing.rejection?.message ?? 'unknown reason'}; start over with a new upload id`);
    }
    if (existing) await existing.persisting;
    const stored = await getJson<SessionRecord>(this.store, progressKey);
    // Another gateway wrote the session since this process last did: its copy here is stale.
    // (While a stream is attached the lease renewals move the version; the holder's name is what counts.)
    const stale = existing && (!stored || stored.value.instance !== this.opts.instanceId || (!existing.holder && stored.version !== existing.version));
    if (existing && existing.state !== 'complete' && stale) {
      this.#forget(existing);
      existing = undefined;
    }
    if (existing) {
      if (existing.policy.roundAttempt !== policy.roundAttempt) {
        await this.#reject(existing, new FedmmError('FAILED_PRECONDITION', `round ${header.round} of task ${header.taskId} restarted (attempt ${policy.roundAttempt}) during upload ${header.uploadId}; train on the new round and upload with a new upload id`)).catch(() => undefined);
        throw existing.rejection!;
      }
      existing.lastActivity = this.#now();
      // The client lost the answer to a finished upload: give it again, change nothing.
      if (existing.state === 'complete') return existing.result();
      return existing;
    }
    if (stored?.value.identity !== undefined && stored.value.identity !== identity) throw anotherHeader();
    if (stored?.value.rejected) throw new FedmmError('FAILED_PRECONDITION', `upload ${header.uploadId} was rejected: ${stored.value.rejected}; start over with a new upload id`);
    const restarted = (): FedmmError => new FedmmError('FAILED_PRECONDITION', `round ${header.round} of task ${header.taskId} restarted (attempt ${policy.roundAttempt}) during upload ${header.uploadId}; train on the new round and upload with a new upload id`);
    const storedAttempt = stored?.value.attempt;
    if (stored?.value.complete && storedAttempt !== undefined && storedAttempt !== policy.roundAttempt) throw restarted();
    const accepted = await getJson<AcceptedRecord>(this.store, this.#acceptedKey(header.taskId, header.round, policy.roundAttempt, tenant));
    if (accepted && (accepted.value.phase !== 'claimed' || this.#now() - accepted.value.claimedAt < STALE_CLAIM_MS)) {
      const same = accepted.value.uploadId === header.uploadId && accepted.value.sha256 === header.sha256;
      if (same && accepted.value.phase !== 'claimed') {
        if (accepted.value.phase === 'verdicts') await this.#report(tenant, header, accepted.value.shards, policy.roundAttempt);
        return { uploadId: header.uploadId, bytesReceived: header.size, complete: true, shards: accepted.value.shards };
      }
      // Claimed by this very upload, whose gateway stopped while finishing: resuming finishes it.
      if (!same) throw new FedmmError('ALREADY_EXISTS', `tenant ${tenant} already delivered an update to round ${header.round} of task ${header.taskId} (upload ${accepted.value.uploadId}); each member sends one update per round`);
    }
    for (const s of this.#sessions.values()) {
      if (s.tenant === tenant && s.header.taskId === header.taskId && s.header.round === header.round && (s.state === 'open' || s.state === 'finishing')) {
        throw new FedmmError('FAILED_PRECONDITION', `upload ${s.header.uploadId} of tenant ${tenant} to round ${header.round} is still in progress; resume it (GetUploadStatus) or wait ${Math.ceil(this.opts.idleMs / 60_000)} min for it to expire`);
      }
    }
    const plan = policy.secureAggregation ? planMaskedUpload(header, policy) : planUpdate(header, policy);
    if (stored && storedAttempt !== undefined && storedAttempt !== policy.roundAttempt) {
      // Started in an earlier attempt of the round: take it over only to reject it.
      const session = await this.#takeOver(stored, key, progressKey, tenant, header, policy, plan, await this.#start());
      await this.#reject(session, restarted());
    }
    if (stored?.value.complete) return { uploadId: header.uploadId, bytesReceived: header.size, complete: true, shards: plan.shards.length };
    const from = (stored && !stored.value.complete && stored.value.identity === identity ? await this.#resumePoint(stored.value, plan) : undefined) ?? (await this.#start());
    if (stored) return this.#takeOver(stored, key, progressKey, tenant, header, policy, plan, from);
    const session = new UploadSession(key, tenant, header, policy, plan, from.hash, from.checkpoint, this.#now());
    const v = await this.store.compareAndSet(progressKey, 0, JSON.stringify(this.#record(session, true)));
    if (v === undefined) throw new FedmmError('ABORTED', `upload ${header.uploadId} is being started through another gateway at the same time; call GetUploadStatus and resume it`);
    session.version = v;
    this.#sessions.set(key, session);
    return session;
  }

  async #start(): Promise<{ hash: ResumableSha256; checkpoint: Checkpoint }> {
    const hash = await ResumableSha256.create();
    return { hash, checkpoint: { offset: 0, sha256: hash.exportState(), sumSquares: 0 } };
  }

  /** The stored checkpoint as a live hasher, or undefined when it cannot be continued here (the upload then starts over at 0). */
  async #resumePoint(r: SessionRecord, plan: UpdatePlan): Promise<{ hash: ResumableSha256; checkpoint: Checkpoint } | undefined> {
    const cp = r.resume;
    if (!cp || r.bytesReceived === 0) return undefined;
    if (cp.fingerprint !== plan.roundFingerprint || cp.shardElements !== plan.shardElements || cp.sha256.bytes !== r.bytesReceived) return undefined;
    const checkpoint = { offset: r.bytesReceived, sha256: cp.sha256, sumSquares: cp.sumSquares };
    try {
      new UpdateDecoder(plan, checkpoint);
      return { hash: await ResumableSha256.resume(cp.sha256), checkpoint };
    } catch (err) {
      this.opts.log.warn('an upload\'s stored checkpoint cannot be continued; it starts over', { offset: r.bytesReceived, err });
      return undefined;
    }
  }

  /**
   * Claims a session another gateway (or an earlier process) wrote. A holder with a live lease is
   * asked to let go and is waited for; a lapsed lease is taken without asking.
   */
  async #takeOver(
    stored: { value: SessionRecord; version: number }, key: string, progressKey: string, tenant: string, header: UploadHeaderInfo, policy: UploadPolicy, plan: UpdatePlan,
    from: { hash: ResumableSha256; checkpoint: Checkpoint },
  ): Promise<UploadSession> {
    const me = this.opts.instanceId;
    const deadline = this.#now() + this.#leaseMs + LEASE_GRACE_MS + 2000;
    let cur = stored;
    for (;;) {
      const r = cur.value;
      if (r.rejected) throw new FedmmError('FAILED_PRECONDITION', `upload ${header.uploadId} was rejected: ${r.rejected}; start over with a new upload id`);
      const now = this.#now();
      // A record naming this instance but unknown to this process was left by an earlier run of it.
      const free = r.instance === me || r.leaseUntil + LEASE_GRACE_MS <= now || r.leaseUntil === 0;
      if (free) {
        if (r.bytesReceived !== from.checkpoint.offset && r.bytesReceived > 0 && !r.complete) {
          // The holder moved on while this gateway waited: continue from the newer checkpoint.
          from = (await this.#resumePoint(r, plan)) ?? from;
        }
        const session = new UploadSession(key, tenant, header, policy, plan, from.hash, from.checkpoint, now);
        const v = await this.store.compareAndSet(progressKey, cur.version, JSON.stringify(this.#record(session, true)));
        if (v !== undefined) {
          session.version = v;
          this.#sessions.set(key, session);
          if (r.instance !== me) this.opts.log.info('upload session taken over', { tenant, task: header.taskId, round: header.round, upload: header.uploadId, from: r.instance, offset: from.checkpoint.offset });
          return session;
        }
      } else if (r.takeover !== me) {
        await this.store.compareAndSet(progressKey, cur.version, JSON.stringify({ ...r, takeover: me }));
      }
      if (this.#now() > deadline) {
        throw new FedmmError('UNAVAILABLE', `upload ${header.uploadId} is still held by gateway ${r.instance}, which has not let go; retry in a few seconds`);
      }
      await sleep(100);
      const next = await getJson<SessionRecord>(this.store, progressKey);
      if (!next) throw new FedmmError('ABORTED', `upload ${header.uploadId} disappeared from the store while resuming; start it again from offset 0`);
      cur = next;
    }
  }

  /** Makes the caller the session's only stream; a stream already attached (a dead connection, usually) is aborted. */
  async #attach(session: UploadSession, signal: AbortSignal): Promise<{ signal: AbortSignal; release: () => void }> {
    while (session.holder) {
      session.holder.abort.abort(new FedmmError('ABORTED', `upload ${session.header.uploadId} was resumed by a newer stream`));
      await session.holder.released;
    }
    if (session.lost) throw new FedmmError('ABORTED', `upload ${session.header.uploadId} moved to another gateway; call GetUploadStatus and resume it`);
    const abort = new AbortController();
    let done!: () => void;
    const released = new Promise<void>((r) => (done = r));
    const holder = { abort, released };
    session.holder = holder;
    // Take the lease before any byte is published; this also finds out whether another gateway took the session.
    try {
      await this.#persist(session, true);
    } catch (e) {
      if (session.holder === holder) session.holder = undefined;
      done();
      throw e;
    }
    if (session.lost) {
      done();
      throw new FedmmError('ABORTED', `upload ${session.header.uploadId} moved to another gateway; call GetUploadStatus and resume it`);
    }
    // Renewing the lease is also what notices a takeover request from another gateway.
    const renew = setInterval(() => void this.#persist(session, true).catch((err: unknown) => this.opts.log.warn('cannot renew the hold on an upload', { upload: session.header.uploadId, err })), Math.max(100, Math.floor(this.#leaseMs / 3)));
    return {
      signal: AbortSignal.any([signal, abort.signal]),
      release: () => {
        clearInterval(renew);
        if (session.holder === holder) session.holder = undefined;
        session.lastActivity = this.#now();
        done();
      },
    };
  }

  async #receive(session: UploadSession, chunk: UploadChunkInfo): Promise<void> {
    const { offset, data } = chunk;
    if (data.length > MAX_STREAM_CHUNK_BYTES) throw new FedmmError('INVALID_ARGUMENT', `chunk of ${data.length} bytes exceeds ${MAX_STREAM_CHUNK_BYTES}; send chunks of at most 1 MiB`);
    if (crc32c(data) !== chunk.crc32c) {
      throw new FedmmError('DATA_LOSS', `chunk at offset ${offset} fails its CRC-32C check; resume from offset ${session.durable} (GetUploadStatus)`, { resumeFrom: session.durable });
    }
    const have = session.decoder.processed;
    const end = offset + data.length;
    if (data.length === 0 || end <= have) return;
    if (session.state !== 'open') throw new FedmmError('FAILED_PRECONDITION', `upload ${session.header.uploadId} already has all its bytes; close the stream`);
    if (offset > have) {
      throw new FedmmError('OUT_OF_RANGE', `chunk at offset ${offset} leaves a gap: the gateway holds the upload up to ${have}; call GetUploadStatus and resume from bytes_received (${session.durable})`, { resumeFrom: session.durable });
    }
    if (end > session.header.size) throw new FedmmError('OUT_OF_RANGE', `chunk [${offset}, ${end}) runs past the declared size ${session.header.size}`);
    // Only a holder whose lease runs publishes: past it another gateway may have taken the session.
    if (session.lost) throw new FedmmError('ABORTED', `upload ${session.header.uploadId} moved to another gateway; call GetUploadStatus and resume it`);
    if (this.#now() >= session.leaseUntil) throw new FedmmError('UNAVAILABLE', `the gateway cannot renew its hold on upload ${session.header.uploadId} in the store; resume it (GetUploadStatus) shortly`);
    const fresh = data.subarray(have - offset);
    let records: FilledRecord[];
    try {
      records = session.decoder.push(fresh);
    } catch (e) {
      session.hash.update(fresh);
      return this.#reject(session, e);
    }
    if (records.length > 0) {
      // The checkpoint sits where the last completed chunk ends: hash up to there, save, hash the rest.
      const cut = session.decoder.emittedThrough - have;
      session.hash.update(fresh.subarray(0, cut));
      const checkpoint: Checkpoint = { offset: session.decoder.emittedThrough, sha256: session.hash.exportState(), sumSquares: session.decoder.emittedSumSquares };
      session.hash.update(fresh.subarray(cut));
      this.#publishBatch(session, records, checkpoint);
    } else {
      session.hash.update(fresh);
    }
    while (session.inflightBytes > this.opts.windowBytes) await this.#awaitOldest(session);
    if (session.failure !== undefined) return this.#reject(session, this.#busFailure(session));
  }

  #publishBatch(session: UploadSession, records: FilledRecord[], checkpoint: Checkpoint): void {
    const { header, plan } = session;
    const messages: OutgoingMessage[] = [];
    let bytes = 0;
    for (const r of records) {
      const meta = {
        task: header.taskId, round: header.round, client: session.tenant, shard: r.shard, seq: r.seq, seqCount: plan.seqCounts.get(r.shard)!,
        layoutFingerprint: plan.roundFingerprint, elementOffset: r.elementOffset, numExamples: header.numExamples, updateSha256: header.sha256,
      };
      // The decoder copied a masked upload's bytes untouched: its "F32" values are the words' bit patterns.
      const c = plan.masked
        ? encodeMaskedChunk({ ...meta, words: new Uint32Array(r.values.buffer, r.values.byteOffset, r.values.length) })
        : encodeUpdateChunk({ ...meta, dtype: 'F32', values: r.values });
      messages.push({ key: c.key, value: c.value, headers: { ...c.headers, [RECORD_KIND_HEADER]: 'chunk', [VERDICT_HEADERS.upload]: header.uploadId } });
      session.touched.add(r.shard);
      bytes += c.value.byteLength;
    }
    const published = this.bus.publish(Topics.updates, messages).then(() => undefined);
    const previous = session.ackTail;
    // Acknowledge in payload order even when a later batch lands first: a checkpoint never claims an unacknowledged chunk.
    session.ackTail = Promise.all([previous, published]).then(
      () => {
        if (session.failure === undefined && checkpoint.offset > session.checkpoint.offset) session.checkpoint = checkpoint;
        void this.#persist(session, false).catch((err: unknown) => this.opts.log.warn('cannot record upload progress', { err }));
      },
      (err: unknown) => {
        session.failure ??= err;
      },
    );
    const entry = { done: session.ackTail, bytes };
    session.inflight.push(entry);
    session.inflightBytes += bytes;
  }

  async #awaitOldest(session: UploadSession): Promise<void> {
    const oldest = session.inflight.shift();
    if (!oldest) return;
    await oldest.done;
    session.inflightBytes -= oldest.bytes;
  }

  async #drain(session: UploadSession): Promise<void> {
    while (session.inflight.length > 0) await this.#awaitOldest(session);
    if (session.failure !== undefined && session.state !== 'rejected') await this.#reject(session, this.#busFailure(session));
  }

  #busFailure(session: UploadSession): FedmmError {
    const e = session.failure;
    const why = isFedmmError(e) ? e.message : (e as Error)?.message ?? String(e);
    return new FedmmError('UNAVAILABLE', `the update bus did not accept chunks of upload ${session.header.uploadId} (${why}); upload it again with a new upload id`);
  }

  async #finish(session: UploadSession): Promise<UploadResult> {
    const { header, policy, plan, tenant } = session;
    session.state = 'finishing';
    if (session.digest === undefined) {
      session.digest = session.hash.digestHex();
      session.norm = Math.sqrt(session.decoder.sumSquares);
    }
    if (session.digest !== header.sha256) {
      return this.#reject(session, new FedmmError('DATA_LOSS', `the update's sha256 is ${session.digest} but the header declared ${header.sha256}; rebuild the payload and upload it again with a new upload id`));
    }
    if (policy.maxUpdateNorm > 0 && session.norm > policy.maxUpdateNorm) {
      return this.#reject(session, new FedmmError('INVALID_ARGUMENT', `update norm ${session.norm.toPrecision(6)} exceeds the task's bound ${policy.maxUpdateNorm}; clip the update`));
    }
    if (!session.verdictsPublished) {
      await this.#claim(session);
      await this.bus.publish(Topics.updates, plan.shards.map((shard) => this.#verdict(session, shard, true)));
      session.verdictsPublished = true;
      await this.#setPhase(session, 'verdicts');
    }
    await this.#report(tenant, header, plan.shards.length, policy.roundAttempt);
    await this.#setPhase(session, 'reported');
    session.state = 'complete';
    await this.#persist(session, true);
    this.opts.log.info('update accepted', { tenant, task: header.taskId, round: header.round, upload: header.uploadId, bytes: header.size, shards: plan.shards.length, norm: session.norm });
    return session.result();
  }

  async #claim(session: UploadSession): Promise<void> {
    const { header, policy } = session;
    const key = this.#acceptedKey(header.taskId, header.round, policy.roundAttempt, session.tenant);
    const record: AcceptedRecord = { uploadId: header.uploadId, sha256: header.sha256, phase: 'claimed', claimedAt: this.#now(), shards: session.plan.shards.length };
    const current = await getJson<AcceptedRecord>(this.store, key);
    if (current && current.value.uploadId === header.uploadId && current.value.sha256 === header.sha256) return;
    if (current && (current.value.phase !== 'claimed' || this.#now() - current.value.claimedAt < STALE_CLAIM_MS)) {
      return this.#reject(session, new FedmmError('ALREADY_EXISTS', `tenant ${session.tenant} already delivered an update to round ${header.round} of task ${header.taskId} (upload ${current.value.uploadId}); each member sends one update per round`));
    }
    if ((await this.store.compareAndSet(key, current?.version ?? 0, JSON.stringify(record))) === undefined) {
      return this.#reject(session, new FedmmError('ALREADY_EXISTS', `another upload of tenant ${session.tenant} to round ${header.round} of task ${header.taskId} completed at the same time; each member sends one update per round`));
    }
  }

  async #setPhase(session: UploadSession, phase: AcceptedRecord['phase']): Promise<void> {
    const { header, policy } = session;
    const record: AcceptedRecord = { uploadId: header.uploadId, sha256: header.sha256, phase, claimedAt: this.#now(), shards: session.plan.shards.length };
    await this.store.put(this.#acceptedKey(header.taskId, header.round, policy.roundAttempt, session.tenant), JSON.stringify(record));
  }

  async #report(tenant: string, header: UploadHeaderInfo, shards: number, attempt: number): Promise<void> {
    await this.aggregator.reportUpdateReceived({
      taskId: header.taskId, round: header.round, tenant, updateSha256: header.sha256, numExamples: header.numExamples, numShards: shards,
      tensors: header.tensors.map((t) => t.name), bytes: header.size, samplingRate: header.samplingRate, noiseMultiplier: header.noiseMultiplier, steps: header.steps,
    });
    const key = this.#acceptedKey(header.taskId, header.round, attempt, tenant);
    const current = await getJson<AcceptedRecord>(this.store, key);
    if (current && current.value.uploadId === header.uploadId && current.value.phase === 'verdicts') {
      await this.store.put(key, JSON.stringify({ ...current.value, phase: 'reported' }));
    }
  }

  #verdict(session: UploadSession, shard: number, accept: boolean): OutgoingMessage {
    const { header, policy, plan } = session;
    const v = encodeVerdict({
      task: header.taskId, round: header.round, attempt: policy.roundAttempt, client: session.tenant, shard, updateSha256: header.sha256,
      accept, numExamples: header.numExamples, norm: Number.isFinite(session.norm) ? session.norm : 0, seqCount: plan.seqCounts.get(shard)!,
    });
    return { key: v.key, value: v.value, headers: { ...v.headers, [VERDICT_HEADERS.upload]: header.uploadId } };
  }

  /** Rejects the upload: once its chunks are all settled, every shard it touched gets a reject verdict. Always throws. */
  async #reject(session: UploadSession, error: unknown): Promise<never> {
    const err = isFedmmError(error) ? error : new FedmmError('INTERNAL', `upload failed: ${(error as Error)?.message ?? String(error)}`);
    if (session.state === 'rejected') throw session.rejection ?? err;
    session.state = 'rejected';
    session.rejection = err;
    if (session.digest === undefined) session.norm = Math.sqrt(session.decoder.sumSquares);
    while (session.inflight.length > 0) await this.#awaitOldest(session);
    const shards = [...session.touched].sort((a, b) => a - b);
    if (shards.length > 0) {
      try {
        await this.bus.publish(Topics.updates, shards.map((s) => this.#verdict(session, s, false)));
      } catch (e) {
        this.opts.log.warn('cannot publish reject verdicts; workers drop the pending chunks when the round seals', { upload: session.header.uploadId, err: e });
      }
    }
    await this.#persist(session, true).catch(() => undefined);
    this.opts.log.info('update rejected', { tenant: session.tenant, task: session.header.taskId, round: session.header.round, upload: session.header.uploadId, code: err.code, reason: err.message, shards: shards.length });
    throw err;
  }

  /** Writes the session's record (at most once a second unless `force`); `hold` keeps the lease without a stream attached. */
  #persist(session: UploadSession, force: boolean, hold = false): Promise<void> {
    const write = session.persisting.then(() => this.#write(session, force, hold));
    session.persisting = write.catch(() => undefined);
    return write;
  }

  async #write(session: UploadSession, force: boolean, hold: boolean): Promise<void> {
    if (session.lost) return;
    const key = this.#progressKey(session.tenant, session.header.taskId, session.header.round, session.header.uploadId);
    const now = this.#now();
    if (!force && now - session.lastMirror < PROGRESS_EVERY_MS) return;
    session.lastMirror = now;
    for (;;) {
      const record = this.#record(session, hold);
      const v = await this.store.compareAndSet(key, session.version, JSON.stringify(record));
      if (v !== undefined) {
        session.version = v;
        session.durable = record.bytesReceived;
        session.leaseUntil = record.leaseUntil;
        return;
      }
      const current = await getJson<SessionRecord>(this.store, key);
      if (!current || current.value.instance !== this.opts.instanceId) {
        // Another gateway claimed the session (this one's lease had lapsed): stop acting for it, publish nothing more.
        this.opts.log.warn('upload session lost to another gateway', { upload: session.header.uploadId, holder: current?.value.instance });
        session.holder?.abort.abort(new FedmmError('ABORTED', `upload ${session.header.uploadId} moved to another gateway; call GetUploadStatus and resume it`));
        this.#forget(session);
        return;
      }
      // Still this gateway's; someone asked for it: end the stream, the release then lets go.
      session.version = current.version;
      if (current.value.takeover && current.value.takeover !== this.opts.instanceId && (session.state === 'open')) {
        session.handoff = true;
        session.holder?.abort.abort(new FedmmError('ABORTED', `upload ${session.header.uploadId} was resumed through another gateway`));
      }
    }
  }

  #record(session: UploadSession, hold = false): SessionRecord {
    const { header, plan, checkpoint } = session;
    const now = this.#now();
    const complete = session.state === 'complete';
    // A session asked for by another gateway is released as soon as no stream is attached.
    const holding = session.holder !== undefined || (hold && !session.handoff);
    return {
      instance: this.opts.instanceId, leaseUntil: holding ? now + this.#leaseMs : 0, size: header.size,
      bytesReceived: complete ? header.size : checkpoint.offset, complete, updatedAt: session.lastActivity,
      ...(session.state === 'rejected' ? { rejected: session.rejection?.message ?? 'rejected' } : {}),
      identity: uploadIdentity(header), attempt: session.policy.roundAttempt,
      resume: { sha256: checkpoint.sha256, sumSquares: checkpoint.sumSquares, fingerprint: plan.roundFingerprint, shardElements: plan.shardElements },
    };
  }
}
