import { Server, ServerCredentials, status, type ServerReadableStream, type ServerWritableStream, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { gateway as gpb, registry as rpb, events as epb } from '@fedmm/proto';
import { crc32c, sha256Hex } from '@fedmm/tensor';

/** One upload as the fake gateway holds it. */
export interface FakeUpload {
  header: gpb.UploadHeader;
  bytes: Buffer;
  complete: boolean;
}

const err = (code: status, details: string): Error & { code: status; details: string } => Object.assign(new Error(details), { code, details });

/**
 * An in-process GatewayService for tests: serves versions from memory in small chunks, keeps
 * uploads by id, and can cut a download or an upload part way, corrupt a chunk, or be "down".
 */
export class FakeGateway {
  readonly versions = new Map<string, { version: rpb.ModelVersion; bytes: Buffer }>();
  readonly uploads = new Map<string, FakeUpload>();
  readonly downloadOffsets: { versionId: string; offset: number }[] = [];
  readonly uploadStarts: { uploadId: string; firstOffset: number | undefined }[] = [];
  readonly statusCalls: string[] = [];
  readonly subscribers = new Set<ServerWritableStream<gpb.SubscribeRoundEventsRequest, gpb.SubscribeRoundEventsResponse>>();
  chunkBytes = 1000;
  /** Cut the next download after this many chunk bytes. */
  cutDownloadAfter: number | undefined;
  /** Flip a bit in the chunk at this offset, once. */
  corruptChunkAt: number | undefined;
  /** Fail the next upload call after this many chunks. */
  cutUploadAfterChunks: number | undefined;
  /** Answer every call UNAVAILABLE. */
  down = false;
  task: gpb.GatewayServiceGetTaskResponse = gpb.GatewayServiceGetTaskResponse.fromPartial({});
  /** Task ids the platform does not know (NOT_FOUND, as the gateway answers GetTask and a subscription naming one). */
  readonly missingTasks = new Set<string>();
  /** Task ids that exist without the caller among their members (PERMISSION_DENIED). */
  readonly foreignTasks = new Set<string>();
  /** The task ids of every subscription, in order. */
  readonly subscriptions: string[][] = [];
  readonly #server = new Server();
  address = '';

  addVersion(v: Partial<rpb.ModelVersion> & { versionId: string }, bytes: Uint8Array): rpb.ModelVersion {
    const version = rpb.ModelVersion.fromPartial({ ...v, artifactSha256: sha256Hex(bytes), artifactSize: bytes.length });
    this.versions.set(v.versionId, { version, bytes: Buffer.from(bytes) });
    return version;
  }

  #membership(taskIds: readonly string[]): (Error & { code: status; details: string }) | undefined {
    const missing = taskIds.find((t) => this.missingTasks.has(t));
    if (missing !== undefined) return err(status.NOT_FOUND, `task ${missing} does not exist`);
    const foreign = taskIds.find((t) => this.foreignTasks.has(t));
    if (foreign !== undefined) return err(status.PERMISSION_DENIED, `tenant is not a member of task ${foreign}; ask the task's operator to add it`);
    return undefined;
  }

  async start(): Promise<string> {
    this.#server.addService(gpb.GatewayServiceService, {
      getTask: (call: ServerUnaryCall<gpb.GatewayServiceGetTaskRequest, gpb.GatewayServiceGetTaskResponse>, cb: sendUnaryData<gpb.GatewayServiceGetTaskResponse>) => {
        if (this.down) return cb(err(status.UNAVAILABLE, 'down'));
        const refusal = this.#membership([call.request.taskId]);
        if (refusal) return cb(refusal);
        cb(null, this.task);
      },
      acceptTerms: (_call: ServerUnaryCall<gpb.AcceptTermsRequest, gpb.AcceptTermsResponse>, cb: sendUnaryData<gpb.AcceptTermsResponse>) => cb(null, {}),
      subscribeRoundEvents: (call: ServerWritableStream<gpb.SubscribeRoundEventsRequest, gpb.SubscribeRoundEventsResponse>) => {
        if (this.down) return call.emit('error', err(status.UNAVAILABLE, 'down'));
        this.subscriptions.push([...call.request.taskIds]);
        const refusal = this.#membership(call.request.taskIds);
        if (refusal) return call.emit('error', refusal);
        this.subscribers.add(call);
        call.on('cancelled', () => this.subscribers.delete(call));
      },
      downloadModel: (call: ServerWritableStream<gpb.DownloadModelRequest, gpb.DownloadModelResponse>) => {
        if (this.down) return call.emit('error', err(status.UNAVAILABLE, 'down'));
        const v = this.versions.get(call.request.versionId);
        if (!v) return call.emit('error', err(status.NOT_FOUND, `no version ${call.request.versionId}`));
        this.downloadOffsets.push({ versionId: call.request.versionId, offset: call.request.offset });
        let sent = 0;
        let first = true;
        for (let off = call.request.offset; off < v.bytes.length || first; off += this.chunkBytes) {
          if (this.cutDownloadAfter !== undefined && sent >= this.cutDownloadAfter) {
            this.cutDownloadAfter = undefined;
            return call.emit('error', err(status.UNAVAILABLE, 'connection cut'));
          }
          const data = Buffer.from(v.bytes.subarray(off, Math.min(off + this.chunkBytes, v.bytes.length)));
          const crc = crc32c(data);
          if (this.corruptChunkAt === off && data.length > 0) {
            this.corruptChunkAt = undefined;
            data[0] = data[0]! ^ 1;
          }
          call.write({ ...(first ? { version: v.version } : {}), ...(data.length > 0 ? { chunk: { offset: off, data, crc32c: crc } } : {}) } as gpb.DownloadModelResponse);
          first = false;
          sent += data.length;
          if (data.length === 0) break;
        }
        call.end();
      },
      uploadUpdate: (call: ServerReadableStream<gpb.UploadUpdateRequest, gpb.UploadUpdateResponse>, cb: sendUnaryData<gpb.UploadUpdateResponse>) => {
        if (this.down) return cb(err(status.UNAVAILABLE, 'down'));
        let up: FakeUpload | undefined;
        let chunks = 0;
        let done = false;
        const fail = (e: Error): void => {
          if (done) return;
          done = true;
          cb(e);
        };
        call.on('data', (m: gpb.UploadUpdateRequest) => {
          if (done) return;
          const p = m.payload;
          if (p?.$case === 'header') {
            up = this.uploads.get(p.value.uploadId);
            if (!up) {
              up = { header: p.value, bytes: Buffer.alloc(0), complete: false };
              this.uploads.set(p.value.uploadId, up);
            }
            this.uploadStarts.push({ uploadId: p.value.uploadId, firstOffset: undefined });
          } else if (p?.$case === 'chunk') {
            if (!up) return fail(err(status.INVALID_ARGUMENT, 'chunk before header'));
            const start = this.uploadStarts[this.uploadStarts.length - 1]!;
            start.firstOffset ??= p.value.offset;
            if (crc32c(p.value.data) !== p.value.crc32c) return fail(err(status.DATA_LOSS, 'crc'));
            if (p.value.offset !== up.bytes.length) return fail(err(status.OUT_OF_RANGE, `offset ${p.value.offset}, have ${up.bytes.length}`));
            up.bytes = Buffer.concat([up.bytes, p.value.data]);
            chunks++;
            if (this.cutUploadAfterChunks !== undefined && chunks >= this.cutUploadAfterChunks) {
              this.cutUploadAfterChunks = undefined;
              fail(err(status.UNAVAILABLE, 'connection cut'));
            }
          }
        });
        call.on('end', () => {
          if (done || !up) return fail(err(status.INVALID_ARGUMENT, 'no header'));
          up.complete = up.bytes.length === up.header.size && sha256Hex(up.bytes) === up.header.sha256;
          done = true;
          cb(null, { uploadId: up.header.uploadId, bytesReceived: up.bytes.length, complete: up.complete, shards: 1 });
        });
      },
      getUploadStatus: (call: ServerUnaryCall<gpb.GetUploadStatusRequest, gpb.GetUploadStatusResponse>, cb: sendUnaryData<gpb.GetUploadStatusResponse>) => {
        if (this.down) return cb(err(status.UNAVAILABLE, 'down'));
        this.statusCalls.push(call.request.uploadId);
        const up = this.uploads.get(call.request.uploadId);
        if (!up) return cb(err(status.NOT_FOUND, 'no such upload'));
        cb(null, { bytesReceived: up.bytes.length, complete: up.complete, size: up.header.size });
      },
      sendSecAggMessages: (_c: unknown, cb: sendUnaryData<gpb.SendSecAggMessagesResponse>) => cb(err(status.UNIMPLEMENTED, 'no'), null),
      receiveSecAggMessages: (_c: unknown, cb: sendUnaryData<gpb.ReceiveSecAggMessagesResponse>) => cb(err(status.UNIMPLEMENTED, 'no'), null),
    });
    const port = await new Promise<number>((resolve, reject) => this.#server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    this.address = `127.0.0.1:${port}`;
    return this.address;
  }

  /** Sends a round event to every subscriber. */
  publish(event: epb.RoundEvent): void {
    for (const s of this.subscribers) s.write({ event });
  }

  /** Ends every subscription with UNAVAILABLE (a gateway restart). */
  dropSubscribers(): void {
    for (const s of this.subscribers) s.emit('error', err(status.UNAVAILABLE, 'gateway restarting'));
    this.subscribers.clear();
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.#server.tryShutdown(() => resolve()));
  }
}
