import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { FedmmError, KeyedMutex } from '@fedmm/core';
import { isSha256Hex } from '@fedmm/tensor';

/** One attempt of one round of a task. */
export interface RoundAttemptId {
  taskId: string;
  round: number;
  attempt: number;
}

/** What a staged shard says about itself (the header of its part file). */
export interface StagedShardHeader extends RoundAttemptId {
  modelId: string;
  shard: number;
  elementOffset: number;
  elementCount: number;
  contributors: number;
  /** sha256 of the shard's float32 bytes. */
  sha256: string;
}

/** A staged shard on disk: its header, and where its data starts in the part file. */
export interface StagedShard {
  header: StagedShardHeader;
  path: string;
  dataStart: number;
}

/** A shard being received: bytes go to a temporary file until the size and digest check out. */
export interface StagedShardWriter {
  readonly bytesWritten: number;
  readonly expectedBytes: number;
  append(data: Uint8Array): Promise<void>;
  /** Verifies size and sha256, fsyncs and moves the part into place (or finds the same part already there). */
  commit(): Promise<{ alreadyStaged: boolean }>;
  abort(): Promise<void>;
}

const ID = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const PART = /^(\d{8})\.part$/;
const MAGIC = 'fedmm-round-shard/1';

/**
 * Finished shards of rounds, staged on the registry's volume until the coordinator asks for the
 * round's version: `rounds/<task>/<round>/<attempt>/<shard>.part`, each a little-endian u64 header
 * length, the JSON header, then the shard's float32 bytes. A part is written to `rounds/.tmp`,
 * fsynced and renamed into place, so a part under its name is always whole; a crash mid-put leaves
 * only a temporary file, which {@link init} removes.
 */
export class RoundStaging {
  private readonly mutex = new KeyedMutex();
  readonly root: string;
  private readonly tmp: string;

  constructor(blobRoot: string) {
    this.root = join(blobRoot, 'rounds');
    this.tmp = join(this.root, '.tmp');
  }

  async init(): Promise<void> {
    await mkdir(this.tmp, { recursive: true });
    for (const f of await readdir(this.tmp)) await rm(join(this.tmp, f), { force: true });
  }

  attemptDir(a: RoundAttemptId): string {
    checkAttempt(a);
    return join(this.root, a.taskId, String(a.round), String(a.attempt));
  }

  roundDir(taskId: string, round: number): string {
    checkAttempt({ taskId, round, attempt: 1 });
    return join(this.root, taskId, String(round));
  }

  partPath(a: RoundAttemptId, shard: number): string {
    return join(this.attemptDir(a), `${String(shard).padStart(8, '0')}.part`);
  }

  /** Reads a staged shard's header, or undefined when the shard is not staged. */
  async read(a: RoundAttemptId, shard: number): Promise<StagedShard | undefined> {
    const path = this.partPath(a, shard);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    try {
      const prefix = Buffer.alloc(8);
      const size = (await fh.stat()).size;
      if ((await fh.read(prefix, 0, 8, 0)).bytesRead !== 8) throw corrupt(path, 'shorter than its header');
      const n = Number(prefix.readBigUInt64LE(0));
      if (n > 64 * 1024 || 8 + n > size) throw corrupt(path, `header length ${n} does not fit`);
      const json = Buffer.alloc(n);
      await fh.read(json, 0, n, 8);
      const doc = JSON.parse(json.toString('utf8')) as StagedShardHeader & { format?: string };
      if (doc.format !== MAGIC) throw corrupt(path, 'unknown format');
      const { format: _format, ...header } = doc;
      if (size - 8 - n !== header.elementCount * 4) throw corrupt(path, `holds ${size - 8 - n} data bytes, its header announces ${header.elementCount * 4}`);
      return { header, path, dataStart: 8 + n };
    } finally {
      await fh.close();
    }
  }

  /** The data bytes of a staged shard, streamed in chunks of at most chunkSize bytes. */
  readData(s: StagedShard, chunkSize: number): AsyncIterable<Buffer> {
    return createReadStream(s.path, { start: s.dataStart, highWaterMark: chunkSize }) as AsyncIterable<Buffer>;
  }

  /** Starts receiving a shard; a shard already staged with other content is refused before any byte is written. */
  async writer(h: StagedShardHeader): Promise<StagedShardWriter> {
    checkHeader(h);
    const existing = await this.read(h, h.shard);
    if (existing) sameShardOrThrow(existing.header, h);
    const json = Buffer.from(JSON.stringify({ format: MAGIC, ...h }), 'utf8');
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(json.byteLength));
    const tmp = join(this.tmp, `${randomUUID()}.part`);
    const fh = await open(tmp, 'w', 0o640);
    let pos = 0;
    const put = async (data: Uint8Array): Promise<void> => {
      let off = 0;
      while (off < data.byteLength) {
        const { bytesWritten } = await fh.write(data, off, data.byteLength - off, pos + off);
        off += bytesWritten;
      }
      pos += data.byteLength;
    };
    try {
      await put(prefix);
      await put(json);
    } catch (e) {
      await fh.close().catch(() => undefined);
      await rm(tmp, { force: true });
      throw e;
    }
    const hash: Hash = createHash('sha256');
    const expectedBytes = h.elementCount * 4;
    let written = 0;
    let done = false;
    const dest = this.partPath(h, h.shard);
    const dir = this.attemptDir(h);
    const finish = async (): Promise<void> => {
      done = true;
      await fh.close().catch(() => undefined);
      await rm(tmp, { force: true });
    };
    return {
      get bytesWritten() {
        return written;
      },
      expectedBytes,
      append: async (data) => {
        if (done) throw new FedmmError('FAILED_PRECONDITION', 'the shard is already finished');
        if (written + data.byteLength > expectedBytes) {
          throw new FedmmError('INVALID_ARGUMENT', `shard ${h.shard} announced ${h.elementCount} elements (${expectedBytes} bytes) but more bytes arrived`);
        }
        await put(data);
        hash.update(data);
        written += data.byteLength;
      },
      commit: async () => {
        if (done) throw new FedmmError('FAILED_PRECONDITION', 'the shard is already finished');
        try {
          if (written !== expectedBytes) throw new FedmmError('DATA_LOSS', `shard ${h.shard} of round ${h.round} of task ${h.taskId} has ${written} bytes but its header announced ${expectedBytes}; put it again`);
          const sha = hash.digest('hex');
          if (sha !== h.sha256) throw new FedmmError('DATA_LOSS', `shard ${h.shard} of round ${h.round} of task ${h.taskId} has sha256 ${sha}, its header announced ${h.sha256}; put it again`);
          await fh.sync();
          await fh.close();
          // One writer at a time decides whether the part is new: a concurrent put of other bytes must not replace it.
          return await this.mutex.run(dest, async () => {
            const there = await this.read(h, h.shard);
            if (there) {
              sameShardOrThrow(there.header, h);
              await rm(tmp, { force: true });
              return { alreadyStaged: true };
            }
            await mkdir(dir, { recursive: true });
            await rename(tmp, dest);
            await syncDir(dir);
            return { alreadyStaged: false };
          });
        } finally {
          done = true;
          await fh.close().catch(() => undefined);
          await rm(tmp, { force: true });
        }
      },
      abort: async () => {
        if (!done) await finish();
      },
    };
  }

  /** Removes every staged shard of a round attempt; returns how many there were. */
  async discard(a: RoundAttemptId): Promise<number> {
    const dir = this.attemptDir(a);
    const parts = (await readdir(dir).catch(() => [] as string[])).filter((f) => PART.test(f)).length;
    await rm(dir, { recursive: true, force: true });
    await this.pruneEmpty(a.taskId, a.round);
    return parts;
  }

  /** Removes the staged shards of every attempt of a round (once it has a version, none is needed). */
  async discardRound(taskId: string, round: number): Promise<void> {
    await rm(this.roundDir(taskId, round), { recursive: true, force: true });
    await this.pruneEmpty(taskId);
  }

  /** Every staged attempt, with its bytes and the time its newest part was staged. */
  async list(): Promise<{ attempt: RoundAttemptId; bytes: number; newestMs: number }[]> {
    const out: { attempt: RoundAttemptId; bytes: number; newestMs: number }[] = [];
    for (const task of await readdir(this.root)) {
      if (!ID.test(task)) continue;
      for (const round of await readdir(join(this.root, task)).catch(() => [] as string[])) {
        for (const attempt of await readdir(join(this.root, task, round)).catch(() => [] as string[])) {
          const a = { taskId: task, round: Number(round), attempt: Number(attempt) };
          if (!Number.isSafeInteger(a.round) || !Number.isSafeInteger(a.attempt)) continue;
          const dir = join(this.root, task, round, attempt);
          let bytes = 0;
          let newestMs = (await stat(dir)).mtimeMs;
          for (const f of await readdir(dir)) {
            const s = await stat(join(dir, f));
            bytes += s.size;
            newestMs = Math.max(newestMs, s.mtimeMs);
          }
          out.push({ attempt: a, bytes, newestMs });
        }
      }
    }
    return out;
  }

  private async pruneEmpty(taskId: string, round?: number): Promise<void> {
    const dirs = round === undefined ? [join(this.root, taskId)] : [join(this.root, taskId, String(round)), join(this.root, taskId)];
    for (const d of dirs) {
      const left = await readdir(d).catch(() => undefined);
      if (left && left.length === 0) await rm(d, { recursive: true, force: true });
    }
  }
}

function checkAttempt(a: RoundAttemptId): void {
  if (!ID.test(a.taskId)) throw new FedmmError('INVALID_ARGUMENT', `task id ${JSON.stringify(a.taskId)} is not valid: use 1-63 lower-case letters, digits, '.', '_' or '-'`);
  if (!Number.isSafeInteger(a.round) || a.round < 1) throw new FedmmError('INVALID_ARGUMENT', `round ${a.round} is not a positive integer`);
  if (!Number.isSafeInteger(a.attempt) || a.attempt < 1) throw new FedmmError('INVALID_ARGUMENT', `attempt ${a.attempt} is not a positive integer`);
}

function checkHeader(h: StagedShardHeader): void {
  checkAttempt(h);
  if (!Number.isSafeInteger(h.shard) || h.shard < 0 || h.shard > 99_999_999) throw new FedmmError('INVALID_ARGUMENT', `shard index ${h.shard} is not valid`);
  if (!Number.isSafeInteger(h.elementOffset) || h.elementOffset < 0) throw new FedmmError('INVALID_ARGUMENT', `element_offset ${h.elementOffset} is not a non-negative integer`);
  if (!Number.isSafeInteger(h.elementCount) || h.elementCount < 1) throw new FedmmError('INVALID_ARGUMENT', `element_count ${h.elementCount} must be a positive integer`);
  if (!isSha256Hex(h.sha256)) throw new FedmmError('INVALID_ARGUMENT', `sha256 ${JSON.stringify(h.sha256)} is not a lower-case sha256 hex digest of the shard's bytes`);
}

/** The same shard put again must be the same bytes at the same place; anything else is a conflict. */
function sameShardOrThrow(have: StagedShardHeader, want: StagedShardHeader): void {
  if (have.sha256 === want.sha256 && have.elementOffset === want.elementOffset && have.elementCount === want.elementCount && have.modelId === want.modelId) return;
  throw new FedmmError('ALREADY_EXISTS', `shard ${want.shard} of round ${want.round} attempt ${want.attempt} of task ${want.taskId} is already staged with other content (sha256 ${have.sha256.slice(0, 12)}..., elements ${have.elementOffset}+${have.elementCount}); a round attempt's shard is written once — discard the attempt (DiscardRoundShards) to start it over`);
}

function corrupt(path: string, why: string): FedmmError {
  return new FedmmError('DATA_LOSS', `staged shard ${path} is damaged (${why}); discard the round attempt and aggregate it again`);
}

async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  await d.sync().finally(() => d.close());
}
