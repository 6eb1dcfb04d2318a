import { closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync, statSync, truncateSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { mkdirSync } from 'node:fs';
import type { ChannelCredentials, ClientReadableStream, ClientWritableStream } from '@grpc/grpc-js';
import { FedmmError, createLogger, type Logger } from '@fedmm/core';
import { events as epb, gateway as gpb, registry as rpb, task as tpb } from '@fedmm/proto';
import { createRpcClient, fromServiceError, type RpcClient } from '@fedmm/service-kit';
import { clientCredentials, type TlsMaterial } from '@fedmm/pki';
import { MAX_STREAM_CHUNK_BYTES, crc32c, sha256HexOfFile, streamChunks } from '@fedmm/tensor';
import { DEFAULT_BACKOFF, backoffDelay, isRetryable, withRetry, type BackoffPolicy } from './backoff.js';
import { layoutToProto, type UpdatePayload } from './update-payload.js';
import { signTermsDigest } from './terms.js';

export interface GatewayConnectionOptions {
  /** host:port of the gateway. */
  readonly address: string;
  /** The tenant's client certificate, key and the CA (mTLS). */
  readonly tls?: TlsMaterial;
  /** Overrides `tls` (tests use insecure credentials against an in-process gateway). */
  readonly credentials?: ChannelCredentials;
  readonly backoff?: BackoffPolicy;
  /** Upload chunk size (at most 1 MiB). */
  readonly chunkBytes?: number;
  /** Deadline of one unary call. */
  readonly callTimeoutMs?: number;
  readonly log?: Logger;
}

/** Progress of a download or an upload. */
export interface TransferProgress {
  readonly bytes: number;
  readonly total: number;
}

/** What an upload needs besides the payload. */
export interface UploadRequest {
  readonly taskId: string;
  readonly round: number;
  /** Chosen by the agent and persisted before the first byte goes out, so a restart resumes this upload. */
  readonly uploadId: string;
  readonly update: UpdatePayload;
  readonly numExamples: number;
  /** Record-level DP accounting of the local training (zeros when off). */
  readonly samplingRate?: number;
  readonly noiseMultiplier?: number;
  readonly steps?: number;
  /** Ask the gateway what it holds first (a restarted agent resuming an upload). */
  readonly resume?: boolean;
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: TransferProgress) => void;
}

export interface UploadOutcome {
  readonly uploadId: string;
  readonly bytesReceived: number;
  readonly shards: number;
  /** Tries it took (1 = no cut). */
  readonly attempts: number;
  /** Offsets each try started from. */
  readonly resumedFrom: readonly number[];
}

export interface DownloadOutcome {
  readonly version: rpb.ModelVersion;
  readonly file: string;
  readonly bytes: number;
  /** Offsets each try started from (a resumed download has more than one). */
  readonly resumedFrom: readonly number[];
}

/** An event of {@link GatewayConnection.subscribe}: a (re)connection, after which the caller should catch up, or a round event. */
export type SubscriptionItem = { readonly kind: 'connected'; readonly reconnects: number } | { readonly kind: 'event'; readonly event: epb.RoundEvent };

/**
 * The agent's channel to the gateway over mutual TLS. Every call retries with exponential
 * backoff and jitter while the platform is away; downloads resume from the bytes on disk and
 * uploads from the bytes the gateway acknowledged, under the same upload id.
 */
export class GatewayConnection {
  readonly address: string;
  readonly #client: RpcClient<typeof gpb.GatewayServiceService>;
  readonly #backoff: BackoffPolicy;
  readonly #chunkBytes: number;
  readonly #callTimeoutMs: number;
  readonly #log: Logger;
  readonly #keyPem: string | undefined;

  constructor(options: GatewayConnectionOptions) {
    const creds = options.credentials ?? (options.tls ? clientCredentials(options.tls) : undefined);
    if (!creds) throw new FedmmError('INVALID_ARGUMENT', 'the gateway connection needs the tenant certificate, key and CA (mTLS); pass --pki DIR or --cert/--key/--ca');
    this.address = options.address;
    this.#client = createRpcClient(gpb.GatewayServiceService, options.address, creds, { 'grpc.max_receive_message_length': 4 * MAX_STREAM_CHUNK_BYTES });
    this.#backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.#chunkBytes = options.chunkBytes ?? MAX_STREAM_CHUNK_BYTES;
    this.#callTimeoutMs = options.callTimeoutMs ?? 30_000;
    this.#log = options.log ?? createLogger({ component: 'agent.gateway' });
    this.#keyPem = options.tls?.keyPem;
  }

  close(): void {
    this.#client.close();
  }

  #retry<T>(what: string, fn: (attempt: number) => Promise<T>, signal?: AbortSignal, retryable: (e: unknown) => boolean = isRetryable): Promise<T> {
    return withRetry(fn, {
      policy: this.#backoff,
      retryable,
      ...(signal ? { signal } : {}),
      onRetry: ({ attempt, delayMs, error }) => this.#log.warn(`${what} failed; retrying`, { attempt: attempt + 1, delayMs, err: error }),
    });
  }

  /** The task and its current round. */
  async getTask(taskId: string, signal?: AbortSignal): Promise<gpb.GatewayServiceGetTaskResponse> {
    return this.#retry(`GetTask ${taskId}`, () => this.#client.getTask({ taskId }, { deadlineMs: this.#callTimeoutMs }), signal);
  }

  /** Signs the task's terms digest with the client key and records the acceptance. */
  async acceptTerms(task: tpb.Task, signal?: AbortSignal): Promise<void> {
    if (!task.termsDigest) return;
    if (!this.#keyPem) throw new FedmmError('FAILED_PRECONDITION', 'accepting terms needs the client key; connect with TLS material');
    const signature = signTermsDigest(task.termsDigest, this.#keyPem);
    await this.#retry(`AcceptTerms ${task.taskId}`, () => this.#client.acceptTerms({ taskId: task.taskId, termsDigest: task.termsDigest, signature }, { deadlineMs: this.#callTimeoutMs }), signal);
  }

  /** Relays secure-aggregation messages of one stage (to peers or to the coordinator). */
  async sendSecAggMessages(taskId: string, round: number, stage: number, messages: { to: string; payload: Uint8Array }[], signal?: AbortSignal): Promise<void> {
    const req = { taskId, round, stage, messages: messages.map((m) => ({ from: '', to: m.to, stage, payload: Buffer.from(m.payload) })) };
    await this.#retry(`SendSecAggMessages ${taskId} round ${round} stage ${stage}`, () => this.#client.sendSecAggMessages(req, { deadlineMs: this.#callTimeoutMs }), signal);
  }

  /** Long-polls the secure-aggregation messages addressed to this tenant at a stage, waiting up to `waitSeconds`. */
  async receiveSecAggMessages(taskId: string, round: number, stage: number, waitSeconds: number, signal?: AbortSignal): Promise<gpb.ReceiveSecAggMessagesResponse> {
    return this.#retry(`ReceiveSecAggMessages ${taskId} round ${round} stage ${stage}`, () => this.#client.receiveSecAggMessages({ taskId, round, stage, waitSeconds }, { deadlineMs: this.#callTimeoutMs + waitSeconds * 1000 }), signal);
  }

  /** A version's metadata (the first message of its download; the stream is then cancelled). */
  async describeVersion(versionId: string, signal?: AbortSignal, taskId = ''): Promise<rpb.ModelVersion> {
    return this.#retry(`describe version ${versionId}`, () => new Promise<rpb.ModelVersion>((resolve, reject) => {
      const call = this.#client.downloadModel({ versionId, offset: 0, taskId }, { deadlineMs: this.#callTimeoutMs });
      let done = false;
      const finish = (err: unknown, v?: rpb.ModelVersion): void => {
        if (done) return;
        done = true;
        signal?.removeEventListener('abort', onAbort);
        call.cancel();
        if (v) resolve(v);
        else reject(err);
      };
      const onAbort = (): void => finish(signal?.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      call.on('data', (m: gpb.DownloadModelResponse) => {
        if (m.version) finish(undefined, m.version);
        else finish(new FedmmError('DATA_LOSS', `the download of ${versionId} did not start with the version's metadata`));
      });
      call.on('error', (e) => finish(fromServiceError(e, `DownloadModel ${versionId} at ${this.address}`)));
      call.on('end', () => finish(new FedmmError('DATA_LOSS', `the download of ${versionId} ended without the version's metadata`)));
    }), signal);
  }

  /**
   * Downloads a version's artifact to `destFile`. Bytes land in `destFile.part`; after a cut the
   * next try asks for the bytes after those on disk. Each chunk's CRC-32C and its offset are
   * checked as it arrives, the whole file's sha256 against the version's artifact_sha256 at the end.
   */
  async downloadVersion(versionId: string, destFile: string, opts: { signal?: AbortSignal; onProgress?: (p: TransferProgress) => void; taskId?: string } = {}): Promise<DownloadOutcome> {
    mkdirSync(dirname(destFile), { recursive: true });
    const part = `${destFile}.part`;
    const resumedFrom: number[] = [];
    let restarts = 0;
    const retryable = (e: unknown): boolean => isRetryable(e) || (e instanceof FedmmError && e.code === 'DATA_LOSS' && e.details['chunk'] === true);
    for (;;) {
      const version = await this.#retry(`download of ${versionId}`, async () => {
        const from = existsSync(part) ? statSync(part).size : 0;
        resumedFrom.push(from);
        return this.#downloadFrom(versionId, part, from, opts);
      }, opts.signal, retryable);
      const { sha256, bytes } = await sha256HexOfFile(part);
      if (bytes === version.artifactSize && sha256 === version.artifactSha256) {
        renameSync(part, destFile);
        return { version, file: destFile, bytes, resumedFrom };
      }
      rmSync(part, { force: true });
      // A mismatch with every chunk's CRC right means the bytes on disk before a resume were bad; start over once.
      if (++restarts > 1) {
        throw new FedmmError('DATA_LOSS', `the download of ${versionId} has sha256 ${sha256} (${bytes} bytes) but the version says ${version.artifactSha256} (${version.artifactSize} bytes); the artifact is damaged on the platform — tell the operator`, { versionId });
      }
      this.#log.warn('downloaded artifact failed its sha256 check; downloading it again from the start', { versionId });
    }
  }

  #downloadFrom(versionId: string, part: string, from: number, opts: { signal?: AbortSignal; onProgress?: (p: TransferProgress) => void; taskId?: string }): Promise<rpb.ModelVersion> {
    return new Promise<rpb.ModelVersion>((resolve, reject) => {
      const fd = openSync(part, 'a');
      let offset = from;
      let version: rpb.ModelVersion | undefined;
      let settled = false;
      const call: ClientReadableStream<gpb.DownloadModelResponse> = this.#client.downloadModel({ versionId, offset: from, taskId: opts.taskId ?? '' });
      const settle = (err?: unknown): void => {
        if (settled) return;
        settled = true;
        opts.signal?.removeEventListener('abort', onAbort);
        try {
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        if (err) {
          call.cancel();
          reject(err);
        } else if (!version) {
          reject(new FedmmError('UNAVAILABLE', `the download of ${versionId} ended before the version's metadata arrived`));
        } else {
          resolve(version);
        }
      };
      const onAbort = (): void => settle(opts.signal?.reason ?? new FedmmError('ABORTED', 'download cancelled'));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      call.on('data', (m: gpb.DownloadModelResponse) => {
        if (settled) return;
        if (m.version) {
          version = m.version;
          if (offset > version.artifactSize) {
            // The bytes on disk belong to something longer: not this artifact. Start over.
            truncateSync(part, 0);
            settle(new FedmmError('UNAVAILABLE', `partial file ${part} is longer than version ${versionId}; restarting the download`));
            return;
          }
        }
        const c = m.chunk;
        if (!c) return;
        if (crc32c(c.data) !== c.crc32c) {
          settle(new FedmmError('DATA_LOSS', `chunk at offset ${c.offset} of ${versionId} failed its CRC-32C check; resuming from ${offset}`, { chunk: true, offset: c.offset }));
          return;
        }
        const end = c.offset + c.data.length;
        if (c.offset > offset) {
          settle(new FedmmError('UNAVAILABLE', `chunk at offset ${c.offset} of ${versionId} skips bytes from ${offset}; resuming from ${offset}`));
          return;
        }
        if (end <= offset) return;
        const piece = c.data.subarray(offset - c.offset);
        let written = 0;
        while (written < piece.length) written += writeSync(fd, piece, written, piece.length - written);
        offset = end;
        opts.onProgress?.({ bytes: offset, total: version?.artifactSize ?? 0 });
      });
      call.on('error', (e) => settle(fromServiceError(e, `DownloadModel ${versionId} at ${this.address}`)));
      call.on('end', () => {
        if (version && offset < version.artifactSize) settle(new FedmmError('UNAVAILABLE', `the download of ${versionId} stopped at byte ${offset} of ${version.artifactSize}`));
        else settle();
      });
    });
  }

  /**
   * Streams an update: header, then chunks of at most 1 MiB with their CRC-32C. After a cut it asks
   * GetUploadStatus which bytes the gateway holds and sends the rest under the same upload id.
   */
  async uploadUpdate(req: UploadRequest): Promise<UploadOutcome> {
    const resumedFrom: number[] = [];
    let attempts = 0;
    const total = req.update.bytes.length;
    const res = await this.#retry(`upload ${req.uploadId} for ${req.taskId} round ${req.round}`, async (attempt) => {
      attempts++;
      let from = 0;
      if (attempt > 0 || req.resume) {
        const st = await this.#uploadStatus(req);
        if (st?.complete) {
          resumedFrom.push(total);
          return { uploadId: req.uploadId, bytesReceived: st.bytesReceived, complete: true, shards: 0 };
        }
        from = st ? Math.min(st.bytesReceived, total) : 0;
      }
      resumedFrom.push(from);
      const out = await this.#sendFrom(req, from);
      if (!out.complete) {
        throw new FedmmError('UNAVAILABLE', `the gateway holds ${out.bytesReceived} of ${total} bytes of upload ${req.uploadId} but did not complete it; resuming`);
      }
      return out;
    }, req.signal);
    return { uploadId: req.uploadId, bytesReceived: res.bytesReceived, shards: res.shards, attempts, resumedFrom };
  }

  async #uploadStatus(req: UploadRequest): Promise<gpb.GetUploadStatusResponse | undefined> {
    try {
      return await this.#client.getUploadStatus({ taskId: req.taskId, round: req.round, uploadId: req.uploadId }, { deadlineMs: this.#callTimeoutMs });
    } catch (e) {
      if (e instanceof FedmmError && e.code === 'NOT_FOUND') return undefined;
      throw e;
    }
  }

  #sendFrom(req: UploadRequest, from: number): Promise<gpb.UploadUpdateResponse> {
    return new Promise<gpb.UploadUpdateResponse>((resolve, reject) => {
      let settled = false;
      const settle = (err: unknown, res?: gpb.UploadUpdateResponse): void => {
        if (settled) return;
        settled = true;
        req.signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(res!);
      };
      const call: ClientWritableStream<gpb.UploadUpdateRequest> = this.#client.uploadUpdate({}, (err, res) => settle(err, res));
      const onAbort = (): void => {
        call.cancel();
        settle(req.signal?.reason ?? new FedmmError('ABORTED', 'upload cancelled'));
      };
      req.signal?.addEventListener('abort', onAbort, { once: true });
      const header = gpb.UploadHeader.fromPartial({
        taskId: req.taskId,
        round: req.round,
        uploadId: req.uploadId,
        layout: layoutToProto(req.update.layout),
        sha256: req.update.sha256,
        size: req.update.bytes.length,
        numExamples: req.numExamples,
        samplingRate: req.samplingRate ?? 0,
        noiseMultiplier: req.noiseMultiplier ?? 0,
        steps: req.steps ?? 0,
      });
      const chunks = streamChunks(req.update.bytes, from, this.#chunkBytes);
      const total = req.update.bytes.length;
      // Write with backpressure: stop when the HTTP/2 window is full, continue on 'drain'.
      const pump = (): void => {
        if (settled) return;
        for (;;) {
          const next = chunks.next();
          if (next.done) {
            call.end();
            return;
          }
          const c = next.value;
          const ok = call.write({ payload: { $case: 'chunk', value: { offset: c.offset, data: Buffer.from(c.data.buffer, c.data.byteOffset, c.data.byteLength), crc32c: c.crc32c } } });
          req.onProgress?.({ bytes: c.offset + c.data.length, total });
          if (!ok) {
            call.once('drain', pump);
            return;
          }
        }
      };
      call.on('error', () => undefined);
      if (call.write({ payload: { $case: 'header', value: header } })) pump();
      else call.once('drain', pump);
    });
  }

  /**
   * Round events of the given tasks, for as long as `signal` is not aborted. A broken stream is
   * reopened with backoff (the delay resets once events flow again); each (re)connection is
   * reported first so the caller can catch up on what it missed with GetTask.
   */
  async *subscribe(taskIds: readonly string[], signal: AbortSignal): AsyncGenerator<SubscriptionItem> {
    let failures = 0;
    let reconnects = 0;
    while (!signal.aborted) {
      const call = this.#client.subscribeRoundEvents({ taskIds: [...taskIds] });
      // While the caller works on a round this generator sits at a yield and nothing iterates the
      // stream; grpc-js emits a broken stream's status as an 'error' event then, which without a
      // listener would end the process. Kept here, it is rethrown once iteration resumes.
      let streamError: unknown;
      call.on('error', (e: unknown) => {
        streamError ??= e;
      });
      const onAbort = (): void => call.cancel();
      signal.addEventListener('abort', onAbort, { once: true });
      let announced = false;
      try {
        // Announced as soon as the call is placed: the server sends nothing until an event, and a
        // catch-up that races a failing stream only repeats an idempotent GetTask.
        yield { kind: 'connected', reconnects };
        announced = true;
        for await (const m of call as AsyncIterable<gpb.SubscribeRoundEventsResponse>) {
          failures = 0;
          if (m.event) yield { kind: 'event', event: m.event };
        }
        if (signal.aborted) return;
        if (streamError !== undefined) throw streamError;
        this.#log.warn('the round-event stream ended; reconnecting', {});
      } catch (e) {
        if (signal.aborted) return;
        const err = fromServiceError(e, `SubscribeRoundEvents at ${this.address}`);
        if (!isRetryable(err) && err.code !== 'UNAVAILABLE') throw err;
        this.#log.warn('the round-event stream broke; reconnecting', { err, connected: announced });
      } finally {
        signal.removeEventListener('abort', onAbort);
        call.cancel();
      }
      reconnects++;
      const delayMs = backoffDelay(this.#backoff, failures++);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delayMs);
        signal.addEventListener('abort', () => {
          clearTimeout(t);
          resolve();
        }, { once: true });
      });
    }
  }
}
