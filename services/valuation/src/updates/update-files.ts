import { mkdir, open, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dataLoss, KeyedMutex } from '@fedmm/core';

/** What is known of one company's stored update for a round. */
export interface StoredUpdateMeta {
  readonly task: string;
  readonly round: number;
  readonly attempt: number;
  readonly client: string;
  readonly sha256: string;
  readonly numExamples: number;
  /** Shards whose accept verdict arrived and whose values are on disk. */
  readonly shards: readonly number[];
}

/** One contiguous run of values at a flat element offset. */
export interface UpdatePiece {
  readonly elementOffset: number;
  readonly values: Float32Array;
}

/**
 * Accepted individual updates on local disk until their round is scored: per task and round, one
 * Float32 file per company (values at their flat offsets, little-endian) and a JSON sidecar that
 * says which upload, attempt and shards it holds. Adapters are small, so a round is a few MB.
 */
export class UpdateFiles {
  readonly #mutex = new KeyedMutex();
  /** Files opened for reading, per task: lets tests prove a secure task's updates are never read. */
  readonly reads = new Map<string, number>();

  constructor(readonly dir: string) {}

  /** The directory of a task's round. */
  roundDir(task: string, round: number): string {
    return join(this.dir, encodeURIComponent(task), String(round));
  }

  /** Writes one accepted shard of an upload; a newer attempt or another upload replaces what was there. */
  writeShard(meta: Omit<StoredUpdateMeta, 'shards'>, shard: number, pieces: readonly UpdatePiece[]): Promise<void> {
    return this.#mutex.run(`${meta.task}/${meta.round}/${meta.client}`, async () => {
      const dir = this.roundDir(meta.task, meta.round);
      await mkdir(dir, { recursive: true });
      const base = join(dir, encodeURIComponent(meta.client));
      const current = await this.#readMeta(`${base}.json`);
      if (current && current.attempt > meta.attempt) return; // a stale attempt replayed late
      const fresh = !current || current.attempt !== meta.attempt || current.sha256 !== meta.sha256;
      const file = await open(`${base}.f32`, fresh ? 'w' : 'r+');
      try {
        for (const p of pieces) {
          await file.write(new Uint8Array(p.values.buffer, p.values.byteOffset, p.values.byteLength), 0, p.values.byteLength, p.elementOffset * 4);
        }
        await file.datasync();
      } finally {
        await file.close();
      }
      const shards = new Set(fresh ? [] : current.shards);
      shards.add(shard);
      const next: StoredUpdateMeta = { ...meta, shards: [...shards].sort((a, b) => a - b) };
      await writeFile(`${base}.json.tmp`, JSON.stringify(next));
      await rename(`${base}.json.tmp`, `${base}.json`);
    });
  }

  /** The updates stored for a round. */
  async list(task: string, round: number): Promise<StoredUpdateMeta[]> {
    let names: string[];
    try {
      names = await readdir(this.roundDir(task, round));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: StoredUpdateMeta[] = [];
    for (const n of names.filter((x) => x.endsWith('.json'))) {
      const m = await this.#readMeta(join(this.roundDir(task, round), n));
      if (m) out.push(m);
    }
    return out;
  }

  /** One company's update as a flat Float32Array of `totalElements` (missing tail values are 0). */
  async read(task: string, round: number, client: string, totalElements: number): Promise<Float32Array> {
    this.reads.set(task, (this.reads.get(task) ?? 0) + 1);
    const bytes = await readFile(join(this.roundDir(task, round), `${encodeURIComponent(client)}.f32`));
    if (bytes.byteLength > totalElements * 4) {
      throw dataLoss(`stored update of ${client} for ${task} round ${round} holds ${bytes.byteLength / 4} values, the layout has ${totalElements}; the round's layout changed, rescore after the updates are replayed`);
    }
    const out = new Float32Array(totalElements);
    out.set(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength - (bytes.byteLength % 4))));
    return out;
  }

  /** Deletes a round's updates (after scoring). */
  async removeRound(task: string, round: number): Promise<void> {
    await rm(this.roundDir(task, round), { recursive: true, force: true });
  }

  async #readMeta(path: string): Promise<StoredUpdateMeta | undefined> {
    try {
      return JSON.parse(await readFile(path, 'utf8')) as StoredUpdateMeta;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw dataLoss(`update sidecar ${path} is unreadable (${(e as Error).message}); delete the round's directory and let the consumer replay it`);
    }
  }
}
