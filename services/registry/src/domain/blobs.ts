import { mkdir, open, rename, rm, readdir, stat, type FileHandle } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { randomUUID, createHash, type Hash } from 'node:crypto';
import { FedmmError } from '@fedmm/core';
import { isSha256Hex } from '@fedmm/tensor';

/** An upload in progress: bytes go to a temporary file until the digest and size check out. */
export interface BlobWriter {
  readonly bytesWritten: number;
  append(data: Uint8Array): Promise<void>;
  /**
   * Verifies size and sha256 (when expected is given: an upload announces them; a blob the registry
   * writes itself is stored under the digest of what it wrote), fsyncs and moves the file into place.
   */
  commit(expected?: { sha256: string; size: number }): Promise<{ sha256: string; size: number; path: string }>;
  abort(): Promise<void>;
}

/**
 * Content-addressed blobs on a local directory (a PersistentVolume in Kubernetes). A blob is
 * written to tmp/, fsynced and renamed into sha256/ab/<digest>: a crash leaves at most a
 * temporary file, never a half blob under its digest.
 */
export class BlobStore {
  constructor(readonly root: string) {}

  async init(): Promise<void> {
    await mkdir(join(this.root, 'tmp'), { recursive: true });
    await mkdir(join(this.root, 'sha256'), { recursive: true });
    // Temporary files left by a crash are never referenced.
    for (const f of await readdir(join(this.root, 'tmp'))) await rm(join(this.root, 'tmp', f), { force: true });
  }

  pathOf(sha256: string): string {
    if (!isSha256Hex(sha256)) throw new FedmmError('INVALID_ARGUMENT', `${JSON.stringify(sha256)} is not a sha256 hex digest`);
    return join(this.root, 'sha256', sha256.slice(0, 2), sha256);
  }

  async has(sha256: string): Promise<number | undefined> {
    try {
      return (await stat(this.pathOf(sha256))).size;
    } catch {
      return undefined;
    }
  }

  async writer(): Promise<BlobWriter> {
    const tmp = join(this.root, 'tmp', `${randomUUID()}.part`);
    const fh: FileHandle = await open(tmp, 'w', 0o640);
    const hash: Hash = createHash('sha256');
    let written = 0;
    let done = false;
    const root = this.root;
    const pathOf = (sha: string): string => this.pathOf(sha);
    return {
      get bytesWritten() {
        return written;
      },
      async append(data) {
        if (done) throw new FedmmError('FAILED_PRECONDITION', 'the upload is already finished');
        let off = 0;
        while (off < data.byteLength) {
          const { bytesWritten } = await fh.write(data, off, data.byteLength - off, written + off);
          off += bytesWritten;
        }
        hash.update(data);
        written += data.byteLength;
      },
      async commit(expected) {
        done = true;
        const sha = hash.digest('hex');
        try {
          if (expected && written !== expected.size) throw new FedmmError('DATA_LOSS', `artifact has ${written} bytes but the header announced ${expected.size}; upload it again`);
          if (expected && sha !== expected.sha256) throw new FedmmError('DATA_LOSS', `artifact sha256 ${sha} does not match the announced ${expected.sha256}; upload it again`);
          await fh.sync();
          await fh.close();
          const dest = pathOf(sha);
          await mkdir(join(root, 'sha256', sha.slice(0, 2)), { recursive: true });
          await rename(tmp, dest);
          const dir = await open(join(root, 'sha256', sha.slice(0, 2)), 'r');
          await dir.sync().finally(() => dir.close());
          return { sha256: sha, size: written, path: dest };
        } catch (e) {
          await fh.close().catch(() => undefined);
          await rm(tmp, { force: true });
          throw e;
        }
      },
      async abort() {
        if (done) return;
        done = true;
        await fh.close().catch(() => undefined);
        await rm(tmp, { force: true });
      },
    };
  }

  /** Reads a blob from an offset in chunks of chunkSize bytes. */
  read(sha256: string, offset: number, chunkSize: number): AsyncIterable<Buffer> {
    return createReadStream(this.pathOf(sha256), { start: offset, highWaterMark: chunkSize }) as AsyncIterable<Buffer>;
  }

  async list(): Promise<{ sha256: string; size: number }[]> {
    const out: { sha256: string; size: number }[] = [];
    for (const d of await readdir(join(this.root, 'sha256'))) {
      for (const f of await readdir(join(this.root, 'sha256', d))) {
        if (isSha256Hex(f)) out.push({ sha256: f, size: (await stat(join(this.root, 'sha256', d, f))).size });
      }
    }
    return out;
  }

  async remove(sha256: string): Promise<void> {
    await rm(this.pathOf(sha256), { force: true });
  }
}
