import { Code, F64, type FunctionDef, I32, V128, encodeModule, op, simd, webAssembly, type WasmApi, type WasmMemory } from '@fedmm/wasm';

// WebAssembly SIMD kernels for the linear (memory-bound) operations. The scalar JavaScript loop
// tops out well below memcpy bandwidth: one float64 multiply-add per element, no vectors. Here
// each pair of float32 values feeds one f64x2 multiply-add. WebAssembly reads only its own memory,
// so the driver copies one block of each row (a few KiB, cache-resident) into it and runs the
// kernel on the block. The float64 accumulator either lives in WebAssembly memory too (a sum from
// allocateSum: updated in place) or is staged block by block like the rows (any Float64Array).
//
// Every operation is the one the scalar loop performs, in the same order (acc + ((w0 x0 + w1 x1)
// + ...), rows grouped 8, 4, 2, 1 as the scalar loop groups them, IEEE float64, no fused
// multiply-add), so both give bit-identical results.

/** Rows fused per kernel call: registers hold the eight splatted weights. */
export const MAX_FUSED_ROWS = 8;
const GROUP_SIZES = [1, 2, 4, 8] as const;
/** Elements per staged block: 8 rows of float32 plus a float64 block (320 KiB) stay in L2. */
export const DEFAULT_BLOCK_LENGTH = 8192;
/** Sums shorter than this stay plain Float64Arrays: staging costs them little, a memory would. */
export const DEFAULT_MIN_RESIDENT_SUM_LENGTH = 1 << 16;
// Each WebAssembly memory reserves guard regions (~10 GiB of address space on 64-bit) and V8 caps
// the total near 1 TiB: beyond this many live resident sums per thread, sums stay plain arrays.
const MAX_LIVE_RESIDENT_SUMS = 32;
// Addresses are i32: keep every memory below 2 GiB so that they never look negative.
const MAX_MEMORY_BYTES = 2 ** 31 - 65536;
const PAGE = 65536;

// Memory layout, B = block length: row blocks j = 0..7 (float32) at 4 B j, the staged accumulator
// block (float64) at 32 B, a resident sum (float64) from 40 B.
const rowBase = (block: number, j: number): number => 4 * block * j;
const accStagingBase = (block: number): number => 32 * block;
const stagingBytes = (block: number): number => 40 * block;

/** The SIMD implementations of Compute's linear kernels. */
export interface WasmKernels {
  readonly blockLength: number;
  /** acc[offset + i] (= 0 with assign) += sum_j weights[j] * rows[j][i]; rows have one length (checked by the caller). */
  weightedSumInto(acc: Float64Array, offset: number, rows: readonly Float32Array[], weights: ArrayLike<number>, assign?: boolean): void;
  /** out[start + i] = fround(src[start + i] * factor) for i < length. */
  scaleInto(out: Float32Array, src: Float64Array, start: number, length: number, factor: number): void;
  /** A zeroed float64 sum, in WebAssembly memory (updated in place) when it is long enough and fits. */
  allocateSum(length: number): Float64Array;
}

type SumKernel = (accAddr: number, n: number, w0: number, w1: number, w2: number, w3: number, w4: number, w5: number, w6: number, w7: number) => void;
type ScaleKernel = (srcAddr: number, n: number, factor: number) => void;

/**
 * sum<k>(accAddr, n, w0..w7): acc[i] += w0 r0[i] + ... + w(k-1) r(k-1)[i] for i < n & ~3;
 * set<k>: acc[i] = 0 + (w0 r0[i] + ...), the same value as on a zeroed acc, without reading it.
 */
function sumKernel(k: number, block: number, assign: boolean): FunctionDef {
  const ACC = 0, N = 1, Q = 10, END = 11, A = 12, ZERO = 13, W = 14; // params accAddr, n, w0..w7; locals q, end, a, 0, W0..
  const c = new Code();
  c.get(N).i32(-4).emit(op.i32And).i32(2).emit(op.i32Shl).set(END); // row bytes of whole 4-element steps
  for (let j = 0; j < k; j++) c.get(2 + j).simd(simd.f64x2Splat).set(W + j);
  c.emit(op.block, 0x40, op.loop, 0x40);
  c.get(Q).get(END).emit(op.i32GeU, op.brIf, 1);
  c.get(Q).i32(1).emit(op.i32Shl).get(ACC).emit(op.i32Add).set(A); // float64 address of the same element
  for (const half of [0, 8]) {
    c.get(A);
    if (assign) c.get(ZERO); // +0 + s, not s: a sum of -0 terms becomes +0, as on a zeroed accumulator
    else c.get(A).mem(simd.v128Load, 3, 2 * half);
    for (let j = 0; j < k; j++) {
      c.get(Q).mem(simd.v128Load64Zero, 3, rowBase(block, j) + half).simd(simd.f64x2PromoteLowF32x4);
      c.get(W + j).simd(simd.f64x2Mul);
      if (j > 0) c.simd(simd.f64x2Add);
    }
    c.simd(simd.f64x2Add).mem(simd.v128Store, 3, 2 * half);
  }
  c.get(Q).i32(16).emit(op.i32Add).set(Q);
  c.emit(op.br, 0, op.end, op.end);
  return {
    name: `${assign ? 'set' : 'sum'}${k}`,
    params: [I32, I32, F64, F64, F64, F64, F64, F64, F64, F64],
    results: [],
    locals: [I32, I32, I32, V128, ...Array<number>(k).fill(V128)],
    body: c,
  };
}

/** scale(srcAddr, n, factor): row block 0 [i] = fround(src[i] * factor) for i < n & ~1. */
function scaleKernel(): FunctionDef {
  const SRC = 0, N = 1, FACTOR = 2, Q = 3, END = 4, F = 5;
  const c = new Code();
  c.get(N).i32(-2).emit(op.i32And).i32(2).emit(op.i32Shl).set(END);
  c.get(FACTOR).simd(simd.f64x2Splat).set(F);
  c.emit(op.block, 0x40, op.loop, 0x40);
  c.get(Q).get(END).emit(op.i32GeU, op.brIf, 1);
  c.get(Q); // store address: row block 0 starts at 0
  c.get(Q).i32(1).emit(op.i32Shl).get(SRC).emit(op.i32Add).mem(simd.v128Load, 3, 0).get(F).simd(simd.f64x2Mul);
  c.simd(simd.f32x4DemoteF64x2Zero).mem(simd.v128Store64Lane, 3, 0, 0);
  c.get(Q).i32(8).emit(op.i32Add).set(Q);
  c.emit(op.br, 0, op.end, op.end);
  return { name: 'scale', params: [I32, I32, F64], results: [], locals: [I32, I32, V128], body: c };
}

/** The kernel module's bytes for a block length (a multiple of 4). */
export function kernelModuleBytes(block: number): Uint8Array {
  const fns = [...GROUP_SIZES.map((g) => sumKernel(g, block, false)), ...GROUP_SIZES.map((g) => sumKernel(g, block, true))];
  fns.push(scaleKernel());
  return encodeModule(Math.ceil(stagingBytes(block) / PAGE), fns);
}

/** One instance over one memory: its staging blocks and kernels. */
interface Home {
  readonly block: number;
  readonly rowBlocks: readonly Float32Array[];
  readonly accBlock: Float64Array;
  readonly sums: Readonly<Record<number, SumKernel>>;
  readonly sets: Readonly<Record<number, SumKernel>>;
  readonly scale: ScaleKernel;
}

// Resident sums, by their memory's buffer: weightedSumInto and scaleInto find their home here.
const homes = new WeakMap<ArrayBufferLike, Home>();
let liveResidentSums = 0;
const residentSumCollected = new FinalizationRegistry<undefined>(() => {
  liveResidentSums--;
});

function instantiate(wasm: WasmApi, module: object, block: number, memory: WasmMemory): Home {
  const exports = new wasm.Instance(module, { env: { memory } }).exports;
  const sums: Record<number, SumKernel> = {};
  const sets: Record<number, SumKernel> = {};
  for (const g of GROUP_SIZES) {
    sums[g] = exports[`sum${g}`] as SumKernel;
    sets[g] = exports[`set${g}`] as SumKernel;
  }
  return {
    block,
    rowBlocks: Array.from({ length: MAX_FUSED_ROWS }, (_, j) => new Float32Array(memory.buffer, rowBase(block, j), block)),
    accBlock: new Float64Array(memory.buffer, accStagingBase(block), block),
    sums,
    sets,
    scale: exports['scale'] as ScaleKernel,
  };
}

/** acc[at + i] (= 0 with assign) += ((w0 r0[from + i] + w1 r1[from + i]) + ...) for i < n: the scalar loop's order. */
function sumTail(acc: Float64Array, at: number, rows: readonly Float32Array[], j: number, g: number, weights: ArrayLike<number>, from: number, n: number, assign: boolean): void {
  for (let i = 0; i < n; i++) {
    let s = weights[j]! * rows[j]![from + i]!;
    for (let r = 1; r < g; r++) s += weights[j + r]! * rows[j + r]![from + i]!;
    acc[at + i] = (assign ? 0 : acc[at + i]!) + s;
  }
}

function weightedSumBlocks(home: Home, resident: boolean, acc: Float64Array, offset: number, rows: readonly Float32Array[], weights: ArrayLike<number>, assign: boolean): void {
  const B = home.block;
  const { rowBlocks, accBlock, sums, sets } = home;
  const n = rows[0]?.length ?? 0;
  const k = rows.length;
  for (let b = 0; b < n; b += B) {
    const m = Math.min(B, n - b);
    const whole = b === 0 && m === n;
    const vec = m & ~3;
    let addr: number;
    if (resident) {
      addr = acc.byteOffset + 8 * (offset + b);
    } else {
      if (!assign) accBlock.set(acc.subarray(offset + b, offset + b + vec));
      addr = accStagingBase(B);
    }
    // Groups of 8, then 4, 2, 1 rows: the scalar loop's grouping, hence its rounding.
    for (let j = 0; j < k; ) {
      const g = k - j >= 8 ? 8 : k - j >= 4 ? 4 : k - j >= 2 ? 2 : 1;
      const first = assign && j === 0;
      for (let r = 0; r < g; r++) {
        const row = rows[j + r]!;
        rowBlocks[r]!.set(whole && vec === n ? row : row.subarray(b, b + vec));
      }
      (first ? sets : sums)[g]!(addr, vec, weights[j]!, weights[j + 1] ?? 0, weights[j + 2] ?? 0, weights[j + 3] ?? 0, weights[j + 4] ?? 0, weights[j + 5] ?? 0, weights[j + 6] ?? 0, weights[j + 7] ?? 0);
      if (vec < m) sumTail(acc, offset + b + vec, rows, j, g, weights, b + vec, m - vec, first);
      j += g;
    }
    if (!resident) acc.set(vec === B ? accBlock : accBlock.subarray(0, vec), offset + b);
  }
}

function scaleBlocks(home: Home, resident: boolean, out: Float32Array, src: Float64Array, start: number, length: number, factor: number): void {
  const B = home.block;
  const row = home.rowBlocks[0]!;
  for (let b = 0; b < length; b += B) {
    const m = Math.min(B, length - b);
    const vec = m & ~1;
    const at = start + b;
    if (resident) {
      home.scale(src.byteOffset + 8 * at, vec, factor);
    } else {
      home.accBlock.set(src.subarray(at, at + vec));
      home.scale(accStagingBase(B), vec, factor);
    }
    out.set(vec === B ? row : row.subarray(0, vec), at);
    if (vec < m) out[at + vec] = src[at + vec]! * factor;
  }
}

const compiled = new Map<number, object>();

/** Tuning of createWasmKernels. */
export interface WasmKernelOptions {
  /** Elements per staged block, a multiple of 4 (default 8192). */
  readonly blockLength?: number;
  /** Shortest sum that allocateSum places in WebAssembly memory (default 65536). */
  readonly minResidentSumLength?: number;
}

/**
 * Instantiates the SIMD kernels, or returns undefined where WebAssembly SIMD is unavailable (the
 * caller then keeps the scalar loops). Synchronous: the module is a few KiB.
 */
export function createWasmKernels(options: WasmKernelOptions = {}): WasmKernels | undefined {
  const blockLength = options.blockLength ?? DEFAULT_BLOCK_LENGTH;
  const minResident = options.minResidentSumLength ?? DEFAULT_MIN_RESIDENT_SUM_LENGTH;
  if (!Number.isInteger(blockLength) || blockLength < 4 || blockLength % 4 !== 0 || stagingBytes(blockLength) > MAX_MEMORY_BYTES / 2) {
    throw new RangeError(`blockLength must be a positive multiple of 4 below 2^24, got ${blockLength}`);
  }
  const wasm = webAssembly();
  if (wasm === undefined) return undefined;
  let module = compiled.get(blockLength);
  if (module === undefined) {
    const bytes = kernelModuleBytes(blockLength);
    if (!wasm.validate(bytes)) return undefined;
    module = new wasm.Module(bytes);
    compiled.set(blockLength, module);
  }
  const stagingPages = Math.ceil(stagingBytes(blockLength) / PAGE);
  const staging = instantiate(wasm, module, blockLength, new wasm.Memory({ initial: stagingPages }));

  return Object.freeze({
    blockLength,

    weightedSumInto(acc: Float64Array, offset: number, rows: readonly Float32Array[], weights: ArrayLike<number>, assign = false): void {
      const home = homes.get(acc.buffer);
      weightedSumBlocks(home ?? staging, home !== undefined, acc, offset, rows, weights, assign);
    },

    scaleInto(out: Float32Array, src: Float64Array, start: number, length: number, factor: number): void {
      const home = homes.get(src.buffer);
      scaleBlocks(home ?? staging, home !== undefined, out, src, start, length, factor);
    },

    allocateSum(length: number): Float64Array {
      const bytes = stagingBytes(blockLength) + 8 * length;
      if (length < minResident || bytes > MAX_MEMORY_BYTES || liveResidentSums >= MAX_LIVE_RESIDENT_SUMS) {
        return new Float64Array(length);
      }
      let memory: WasmMemory;
      try {
        memory = new wasm.Memory({ initial: Math.ceil(bytes / PAGE) });
      } catch {
        // Address space for WebAssembly memories ran out (each reserves guard regions): a plain
        // array works the same, through staging.
        return new Float64Array(length);
      }
      homes.set(memory.buffer, instantiate(wasm, module, blockLength, memory));
      liveResidentSums++;
      residentSumCollected.register(memory.buffer, undefined);
      return new Float64Array(memory.buffer, stagingBytes(blockLength), length);
    },
  });
}
