import { FedmmError, isFedmmError, type Logger } from '@fedmm/core';
import { Topics, type Bus, type OutgoingMessage } from '@fedmm/bus';
import { getJson, storeKey, type Store } from '@fedmm/store';
import {
  MAX_STREAM_CHUNK_BYTES, RECORD_KIND_HEADER, Sha256Accumulator, VERDICT_HEADERS, crc32c, encodeMaskedChunk, encodeUpdateChunk, encodeVerdict,
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
  readonly now?: () => number;
}

/** Progress of one upload, mirrored in the store for GetUploadStatus. */
interface ProgressRecord {
  instance: string;
  size: number;
  bytesReceived: number;
  complete: boolean;
  rejected?: string;
  updatedAt: number;
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
const part = (s: string | number): string => encodeURIComponent(String(s));

class UploadSession {
  readonly decoder: UpdateDecoder;
  readonly hash = new Sha256Accumulator();
  /** Payload bytes whose chunks the bus has acknowledged. */
  acked = 0;
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
    now: number,
  ) {
    this.decoder = new UpdateDecoder(plan);
    this.lastActivity = now;
  }

  result(): UploadResult {
    const complete = this.state === 'complete';
    return { uploadId: this.header.uploadId, bytesReceived: complete ? this.header.size : this.acked, complete, shards: this.plan.shards.length };
  }
}

function sameUpload(a: UploadHeaderInfo, b: UploadHeaderInfo): boolean {
  const tensors = (h: UploadHeaderInfo): string => JSON.stringify([...h.tensors].sort((x, y) => (x.name < y.name ? -1 : 1)).map((t) => [t.name, t.dtype, t.shape, t.scale ?? 0]));
  return a.sha256 === b.sha256 && a.size === b.size && a.numExamples === b.numExamples && tensors(a) === tensors(b);
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

  constructor(private readonly bus: Bus, private readonly store: Store, private readonly aggregator: AggregatorPort, private readonly opts: UploadsOptions) {
    this.#now = opts.now ?? Date.now;
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
        await this.#mirror(session, true);
        return session.result();
      }
      return await this.#finish(session);
    } catch (e) {
      // Aborts, corrupt chunks and gaps leave the session resumable; a publish failure does not.
      if (session.state !== 'rejected' && session.failure !== undefined) await this.#reject(session, this.#busFailure(session)).catch(() => undefined);
      throw e;
    } finally {
      release();
    }
  }

  /** Where an upload stands: bytes acknowledged (the resume offset), whether it completed, its size. */
  async status(tenant: string, taskId: string, round: number, uploadId: string): Promise<UploadStatus> {
    const s = this.#sessions.get(this.#key(tenant, taskId, round, uploadId));
    if (s) {
      if (s.state === 'rejected') throw new FedmmError('FAILED_PRECONDITION', `upload ${uploadId} was rejected: ${s.rejection?.message ?? 'unknown reason'}; start over with a new upload id`);
      const r = s.result();
      return { bytesReceived: r.bytesReceived, complete: r.complete, size: s.header.size };
    }
    const p = await getJson<ProgressRecord>(this.store, this.#progressKey(tenant, taskId, round, uploadId));
    if (!p) {
      throw new FedmmError('NOT_FOUND', `no upload ${JSON.stringify(uploadId)} of tenant ${tenant} for round ${round} of task ${taskId} is known; start it with UploadUpdate from offset 0`);
    }
    if (p.value.rejected) throw new FedmmError('FAILED_PRECONDITION', `upload ${uploadId} was rejected: ${p.value.rejected}; start over with a new upload id`);
    // The sha256 state of an unfinished upload lives only in the gateway process that held it: start over.
    return p.value.complete ? { bytesReceived: p.value.size, complete: true, size: p.value.size } : { bytesReceived: 0, complete: false, size: p.value.size };
  }

  /** Drops idle sessions; open ones get reject verdicts so workers free their pending chunks. */
  async sweep(): Promise<void> {
    const now = this.#now();
    for (const [key, s] of this.#sessions) {
      if (s.holder || now - s.lastActivity < this.opts.idleMs) continue;
      this.#sessions.delete(key);
      if (s.state === 'open' || s.state === 'finishing') {
        this.opts.log.info('upload session expired', { tenant: s.tenant, task: s.header.taskId, round: s.header.round, upload: s.header.uploadId, bytes: s.acked });
        await this.#reject(s, new FedmmError('DEADLINE_EXCEEDED', `upload ${s.header.uploadId} was idle for more than ${Math.round(this.opts.idleMs / 1000)} s and expired`)).catch(() => undefined);
      }
    }
  }

  /** Sessions held in memory now. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Stops the expiry timer (the sessions die with the process; clients start over elsewhere). */
  close(): void {
    clearInterval(this.#sweeper);
    for (const s of this.#sessions.values()) s.holder?.abort.abort(new FedmmError('UNAVAILABLE', 'the gateway is shutting down; resume the upload shortly'));
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

  async #open(tenant: string, header: UploadHeaderInfo): Promise<UploadSession | UploadResult> {
    const policy = await this.aggregator.getUploadPolicy(header.taskId, header.round, tenant);
    const key = this.#key(tenant, header.taskId, header.round, header.uploadId);
    const existing = this.#sessions.get(key);
    if (existing) {
      if (!sameUpload(existing.header, header)) {
        throw new FedmmError('INVALID_ARGUMENT', `upload ${header.uploadId} was started with another header (sha256, size, tensors or num_examples differ); resume with the same header or start a new upload id`);
      }
      if (existing.state === 'rejected') {
        throw new FedmmError('FAILED_PRECONDITION', `upload ${header.uploadId} was rejected: ${existing.rejection?.message ?? 'unknown reason'}; start over with a new upload id`);
      }
      if (existing.policy.roundAttempt !== policy.roundAttempt) {
        await this.#reject(existing, new FedmmError('FAILED_PRECONDITION', `round ${header.round} of task ${header.taskId} restarted (attempt ${policy.roundAttempt}) during upload ${header.uploadId}; train on the new round and upload with a new upload id`)).catch(() => undefined);
        throw existing.rejection!;
      }
      existing.lastActivity = this.#now();
      // The client lost the answer to a finished upload: give it again, change nothing.
      if (existing.state === 'complete') return existing.result();
      return existing;
    }
    const accepted = await getJson<AcceptedRecord>(this.store, this.#acceptedKey(header.taskId, header.round, policy.roundAttempt, tenant));
    if (accepted && (accepted.value.phase !== 'claimed' || this.#now() - accepted.value.claimedAt < STALE_CLAIM_MS)) {
      if (accepted.value.uploadId === header.uploadId && accepted.value.sha256 === header.sha256 && accepted.value.phase !== 'claimed') {
        if (accepted.value.phase === 'verdicts') await this.#report(tenant, header, accepted.value.shards, policy.roundAttempt);
        return { uploadId: header.uploadId, bytesReceived: header.size, complete: true, shards: accepted.value.shards };
      }
      throw new FedmmError('ALREADY_EXISTS', `tenant ${tenant} already delivered an update to round ${header.round} of task ${header.taskId} (upload ${accepted.value.uploadId}); each member sends one update per round`);
    }
    for (const s of this.#sessions.values()) {
      if (s.tenant === tenant && s.header.taskId === header.taskId && s.header.round === header.round && (s.state === 'open' || s.state === 'finishing')) {
        throw new FedmmError('FAILED_PRECONDITION', `upload ${s.header.uploadId} of tenant ${tenant} to round ${header.round} is still in progress; resume it (GetUploadStatus) or wait ${Math.ceil(this.opts.idleMs / 60_000)} min for it to expire`);
      }
    }
    const plan = policy.secureAggregation ? planMaskedUpload(header, policy) : planUpdate(header, policy);
    const session = new UploadSession(key, tenant, header, policy, plan, this.#now());
    this.#sessions.set(key, session);
    await this.#mirror(session, true);
    return session;
  }

  /** Makes the caller the session's only stream; a stream already attached (a dead connection, usually) is aborted. */
  async #attach(session: UploadSession, signal: AbortSignal): Promise<{ signal: AbortSignal; release: () => void }> {
    while (session.holder) {
      session.holder.abort.abort(new FedmmError('ABORTED', `upload ${session.header.uploadId} was resumed by a newer stream`));
      await session.holder.released;
    }
    const abort = new AbortController();
    let done!: () => void;
    const released = new Promise<void>((r) => (done = r));
    const holder = { abort, released };
    session.holder = holder;
    return {
      signal: AbortSignal.any([signal, abort.signal]),
      release: () => {
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
      throw new FedmmError('DATA_LOSS', `chunk at offset ${offset} fails its CRC-32C check; resume from offset ${session.acked} (GetUploadStatus)`, { resumeFrom: session.acked });
    }
    const have = session.decoder.processed;
    const end = offset + data.length;
    if (data.length === 0 || end <= have) return;
    if (session.state !== 'open') throw new FedmmError('FAILED_PRECONDITION', `upload ${session.header.uploadId} already has all its bytes; close the stream`);
    if (offset > have) {
      throw new FedmmError('OUT_OF_RANGE', `chunk at offset ${offset} leaves a gap: the gateway holds the upload up to ${have}; call GetUploadStatus and resume from bytes_received (${session.acked})`, { resumeFrom: session.acked });
    }
    if (end > session.header.size) throw new FedmmError('OUT_OF_RANGE', `chunk [${offset}, ${end}) runs past the declared size ${session.header.size}`);
    const fresh = data.subarray(have - offset);
    session.hash.update(fresh);
    let records: FilledRecord[];
    try {
      records = session.decoder.push(fresh);
    } catch (e) {
      return this.#reject(session, e);
    }
    if (records.length > 0) this.#publishBatch(session, records);
    while (session.inflightBytes > this.opts.windowBytes) await this.#awaitOldest(session);
    if (session.failure !== undefined) return this.#reject(session, this.#busFailure(session));
  }

  #publishBatch(session: UploadSession, records: FilledRecord[]): void {
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
    const safeOffset = session.decoder.emittedThrough;
    const published = this.bus.publish(Topics.updates, messages).then(() => undefined);
    const previous = session.ackTail;
    // Acknowledge in payload order even when a later batch lands first.
    session.ackTail = Promise.all([previous, published]).then(
      () => {
        if (session.failure === undefined) session.acked = Math.max(session.acked, safeOffset);
        void this.#mirror(session, false).catch((err: unknown) => this.opts.log.warn('cannot mirror upload progress', { err }));
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
    await this.#mirror(session, true);
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
    await this.#mirror(session, true).catch(() => undefined);
    this.opts.log.info('update rejected', { tenant: session.tenant, task: session.header.taskId, round: session.header.round, upload: session.header.uploadId, code: err.code, reason: err.message, shards: shards.length });
    throw err;
  }

  async #mirror(session: UploadSession, force: boolean): Promise<void> {
    const now = this.#now();
    if (!force && now - session.lastMirror < 1000) return;
    session.lastMirror = now;
    const { header } = session;
    const record: ProgressRecord = {
      instance: this.opts.instanceId, size: header.size, bytesReceived: session.state === 'complete' ? header.size : session.acked,
      complete: session.state === 'complete', updatedAt: now,
      ...(session.state === 'rejected' ? { rejected: session.rejection?.message ?? 'rejected' } : {}),
    };
    await this.store.put(this.#progressKey(session.tenant, header.taskId, header.round, header.uploadId), JSON.stringify(record));
  }
}
