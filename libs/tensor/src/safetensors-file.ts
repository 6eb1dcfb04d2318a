import { open, rm, type FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { FedmmError } from '@fedmm/core';
import { type Tensor, type TensorData, bytesOf, bytesPerElement, isDataOf, allocate } from './dtype.js';
import {
  type ParsedTensor, type SafetensorsEntry, type SafetensorsHeader, type SafetensorsPlan, type TensorDescriptor,
  parseSafetensorsHeader, planSafetensors, readHeaderLength,
} from './safetensors.js';
import { Sha256Accumulator, type Sha256Hex } from './sha256.js';

async function readFully(fh: FileHandle, target: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const { bytesRead } = await fh.read(target, done, target.length - done, position + done);
    if (bytesRead === 0) {
      throw new FedmmError('DATA_LOSS', `${path}: file ended after ${position + done} bytes while reading ${target.length} bytes at ${position}; it was truncated while open`);
    }
    done += bytesRead;
  }
}

/**
 * A safetensors file opened for reading on demand: the header is read and validated once; tensor
 * data is read with positioned reads when asked for, so a large file is never held whole.
 */
export class SafetensorsFile {
  readonly path: string;
  readonly header: SafetensorsHeader;
  /** File size in bytes. */
  readonly size: number;
  readonly #fh: FileHandle;
  readonly #byName: ReadonlyMap<string, SafetensorsEntry>;

  private constructor(path: string, fh: FileHandle, size: number, header: SafetensorsHeader) {
    this.path = path;
    this.#fh = fh;
    this.size = size;
    this.header = header;
    this.#byName = new Map(header.entries.map((e) => [e.name, e]));
  }

  /** Opens `path` and validates its header against the file size. */
  static async open(path: string): Promise<SafetensorsFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new FedmmError(code === 'ENOENT' ? 'NOT_FOUND' : 'UNAVAILABLE', `cannot open safetensors file ${path}: ${(e as Error).message}`, { path });
    }
    try {
      const { size } = await fh.stat();
      const prefix = new Uint8Array(8);
      if (size < 8) readHeaderLength(prefix.subarray(0, size), size);
      await readFully(fh, prefix, 0, path);
      const n = readHeaderLength(prefix, size);
      const headerBytes = new Uint8Array(n);
      await readFully(fh, headerBytes, 8, path);
      const header = parseSafetensorsHeader(headerBytes, size - 8 - n);
      return new SafetensorsFile(path, fh, size, header);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** Tensor names in data order. */
  names(): string[] {
    return this.header.entries.map((e) => e.name);
  }

  /** The header entry of `name`; NOT_FOUND when the file has no such tensor. */
  entry(name: string): SafetensorsEntry {
    const e = this.#byName.get(name);
    if (e === undefined) throw new FedmmError('NOT_FOUND', `${this.path} has no tensor "${name}"; it has ${this.#byName.size} tensors`, { tensor: name });
    return e;
  }

  /** Reads one whole tensor into a fresh, aligned buffer. */
  async readTensor(name: string): Promise<ParsedTensor> {
    const e = this.entry(name);
    const n = (e.dataOffsets[1] - e.dataOffsets[0]) / bytesPerElement(e.dtype);
    const data = await this.readElements(name, 0, n);
    const t: ParsedTensor = e.scale !== undefined
      ? { name, dtype: e.dtype, shape: e.shape, data, scale: e.scale, zeroCopy: false }
      : { name, dtype: e.dtype, shape: e.shape, data, zeroCopy: false };
    return Object.freeze(t);
  }

  /** Reads elements [start, end) of a tensor (row-major flat indices). */
  async readElements(name: string, start: number, end: number): Promise<TensorData> {
    const e = this.entry(name);
    const size = bytesPerElement(e.dtype);
    const n = (e.dataOffsets[1] - e.dataOffsets[0]) / size;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end > n) {
      throw new FedmmError('OUT_OF_RANGE', `elements [${start}, ${end}) are outside tensor "${name}" of ${n} elements`, { tensor: name });
    }
    const data = allocate(e.dtype, end - start);
    await readFully(this.#fh, bytesOf(data), this.header.dataStart + e.dataOffsets[0] + start * size, this.path);
    return data;
  }

  /** Reads bytes [begin, end) of the data section (e.g. to stream it in chunks). */
  async readDataBytes(begin: number, end: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || begin < 0 || end < begin || end > this.header.dataLength) {
      throw new FedmmError('OUT_OF_RANGE', `bytes [${begin}, ${end}) are outside the ${this.header.dataLength}-byte data section of ${this.path}`);
    }
    const out = new Uint8Array(end - begin);
    await readFully(this.#fh, out, this.header.dataStart + begin, this.path);
    return out;
  }

  /** Closes the file handle. */
  async close(): Promise<void> {
    await this.#fh.close();
  }
}

/** Opens a safetensors file for on-demand reads (see {@link SafetensorsFile}). */
export function openSafetensorsFile(path: string): Promise<SafetensorsFile> {
  return SafetensorsFile.open(path);
}

function isEmpty(e: SafetensorsEntry): boolean {
  return e.dataOffsets[0] === e.dataOffsets[1];
}

/** Where a stream writer puts bytes. `write` resolves when the sink can take more. */
export interface ByteSink {
  write(bytes: Uint8Array): Promise<void>;
  /** Flushes and closes (a file sink fsyncs first). */
  close(): Promise<void>;
  /** Drops what was written, as far as the sink can. */
  abort(): Promise<void>;
}

/** A sink that writes a new file (failing if it exists), fsyncs on close and deletes it on abort. */
export async function fileSink(path: string): Promise<ByteSink> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'wx');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FedmmError(code === 'EEXIST' ? 'ALREADY_EXISTS' : 'UNAVAILABLE', `cannot create ${path}: ${(e as Error).message}`, { path });
  }
  let closed = false;
  return {
    async write(bytes) {
      let done = 0;
      while (done < bytes.length) {
        const { bytesWritten } = await fh.write(bytes, done, bytes.length - done);
        done += bytesWritten;
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await fh.sync();
      await fh.close();
    },
    async abort() {
      if (!closed) {
        closed = true;
        await fh.close();
      }
      await rm(path, { force: true });
    },
  };
}

/** A sink over a Node writable stream that waits for 'drain' when the stream is full. */
export function writableSink(stream: Writable): ByteSink {
  const failure = (): Error | null => stream.errored ?? null;
  return {
    async write(bytes) {
      const err = failure();
      if (err !== null) throw err;
      if (!stream.write(bytes)) {
        await new Promise<void>((resolve, reject) => {
          const onDrain = (): void => { stream.off('error', onError); resolve(); };
          const onError = (e: Error): void => { stream.off('drain', onDrain); reject(e); };
          stream.once('drain', onDrain);
          stream.once('error', onError);
        });
      }
    },
    close() {
      return new Promise<void>((resolve, reject) => {
        stream.once('error', reject);
        stream.end(() => resolve());
      });
    },
    async abort() {
      stream.destroy();
    },
  };
}

/**
 * Writes a safetensors file whose header is known up front, one tensor after another, without
 * holding the file: create it with the descriptors, then give each tensor's bytes in
 * `plan.entries` order (whole with {@link writeTensor}, or in pieces with {@link write}), then
 * {@link close}, which returns the sha256 content address.
 */
export class SafetensorsStreamWriter {
  readonly plan: SafetensorsPlan;
  readonly #sink: ByteSink;
  readonly #hash = new Sha256Accumulator();
  #written = 0; // bytes of the data section written so far
  #index = 0; // plan entry not yet fully written (zero-length entries stay until passed)
  #state: 'open' | 'closed' | 'failed' = 'open';

  private constructor(sink: ByteSink, plan: SafetensorsPlan) {
    this.#sink = sink;
    this.plan = plan;
  }

  /** Plans the file, writes its header to `sink` and returns the writer. */
  static async create(sink: ByteSink, descriptors: Iterable<TensorDescriptor>, metadata?: Readonly<Record<string, string>>): Promise<SafetensorsStreamWriter> {
    const plan = planSafetensors(descriptors, metadata);
    const w = new SafetensorsStreamWriter(sink, plan);
    await w.#emit(plan.header);
    return w;
  }

  /** Creates `path` (which must not exist) and writes the header. */
  static async toFile(path: string, descriptors: Iterable<TensorDescriptor>, metadata?: Readonly<Record<string, string>>): Promise<SafetensorsStreamWriter> {
    const plan = planSafetensors(descriptors, metadata);
    const sink = await fileSink(path);
    const w = new SafetensorsStreamWriter(sink, plan);
    await w.#emit(plan.header);
    return w;
  }

  /** Bytes of the data section written so far. */
  get dataBytesWritten(): number {
    return this.#written;
  }

  /** The entry that comes next (possibly partly written), or undefined when all data is written. */
  get next(): SafetensorsEntry | undefined {
    return this.plan.entries[this.#index];
  }

  /** Writes the next tensor whole; `name` must be the next one in plan order (zero-length ones may be skipped). */
  async writeTensor(name: string, data: TensorData | Tensor): Promise<void> {
    const es = this.plan.entries;
    let i = this.#index;
    while (i < es.length && es[i]!.name !== name && isEmpty(es[i]!)) i++;
    const next = es[i];
    if (next === undefined || next.name !== name || this.#written !== next.dataOffsets[0]) {
      const pending = es[this.#index];
      throw new FedmmError('FAILED_PRECONDITION', `tensor "${name}" is not next: write ${pending === undefined ? 'nothing more' : `"${pending.name}"${this.#written !== pending.dataOffsets[0] ? ' (partly written)' : ''}`} in plan order`, { tensor: name });
    }
    const values = ArrayBuffer.isView(data) ? data : data.data;
    if (!isDataOf(next.dtype, values) || values.byteLength !== next.dataOffsets[1] - next.dataOffsets[0]) {
      throw new FedmmError('INVALID_ARGUMENT', `tensor "${name}": expected ${next.dataOffsets[1] - next.dataOffsets[0]} bytes of ${next.dtype}, got ${values.byteLength} bytes of ${values.constructor.name}`, { tensor: name });
    }
    this.#index = i;
    await this.write(bytesOf(values));
    if (isEmpty(next)) this.#index = i + 1;
  }

  /** Writes the next raw bytes of the data section (little-endian tensor bytes in plan order). */
  async write(bytes: Uint8Array): Promise<void> {
    if (this.#state !== 'open') throw new FedmmError('FAILED_PRECONDITION', `the writer is ${this.#state}; create a new one`);
    if (this.#written + bytes.length > this.plan.dataLength) {
      throw new FedmmError('OUT_OF_RANGE', `writing ${bytes.length} bytes at ${this.#written} overruns the ${this.plan.dataLength}-byte data section`);
    }
    await this.#emit(bytes);
    this.#written += bytes.length;
    // Pass the entries these bytes completed; a zero-length entry right at the cursor stays next.
    const es = this.plan.entries;
    while (this.#index < es.length) {
      const e = es[this.#index]!;
      if (isEmpty(e) ? e.dataOffsets[0] < this.#written : e.dataOffsets[1] <= this.#written) this.#index++;
      else break;
    }
  }

  /** Checks that every byte was written, closes the sink, and returns the file's sha256 and size. */
  async close(): Promise<{ sha256: Sha256Hex; size: number }> {
    if (this.#state !== 'open') throw new FedmmError('FAILED_PRECONDITION', `the writer is ${this.#state}`);
    if (this.#written !== this.plan.dataLength) {
      throw new FedmmError('FAILED_PRECONDITION', `only ${this.#written} of ${this.plan.dataLength} data bytes were written (next: "${this.next?.name ?? ''}"); write the rest or abort`);
    }
    this.#state = 'closed';
    await this.#sink.close();
    return { sha256: this.#hash.digestHex(), size: this.plan.totalLength };
  }

  /** Abandons the file (a file sink deletes it). */
  async abort(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'failed';
    await this.#sink.abort();
  }

  async #emit(bytes: Uint8Array): Promise<void> {
    try {
      await this.#sink.write(bytes);
    } catch (e) {
      this.#state = 'failed';
      throw e instanceof FedmmError ? e : new FedmmError('UNAVAILABLE', `writing the safetensors stream failed: ${(e as Error).message}`);
    }
    this.#hash.update(bytes);
  }
}
