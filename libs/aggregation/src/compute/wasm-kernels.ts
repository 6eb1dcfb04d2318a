import { Code, F64, type FunctionDef, I32, V128, encodeModule, op, simd } from './wasm-encoder.js';

// WebAssembly SIMD kernels for the linear (memory-bound) operations. The scalar JavaScript loop
// tops out near half of memcpy bandwidth: one float64 multiply-add per element, no vectors. Here
// each f32x4 load feeds two f64x2 multiply-adds. WebAssembly reads only its own memory, so the
// driver stages one block of the accumulator and of each row (a few KiB, cache-resident) into it,
// runs the kernel, and copies the accumulator block back; the copies stream at memcpy speed and
// the accumulator block is read and written once per call whatever the number of rows.
//
// Every operation is the one the scalar loop performs, in the same order (acc + ((w0 x0 + w1 x1)
// + ...), IEEE float64, no fused multiply-add), so both give bit-identical results.

/** Rows fused per kernel call: registers hold the eight splatted weights. */
export const MAX_FUSED_ROWS = 8;
const GROUP_SIZES = [1, 2, 4, 8] as const;
/** Elements per staged block; 8 rows of float32 plus the float64 accumulator block fit in L2. */
export const DEFAULT_BLOCK_LENGTH = 4096;

/** The SIMD implementations of Compute's linear kernels. */
export interface WasmKernels {
  readonly blockLength: number;
  /** acc[offset + i] += sum_j weights[j] * rows[j][i]; rows have one length (checked by the caller). */
  weightedSumInto(acc: Float64Array, offset: number, rows: readonly Float32Array[], weights: ArrayLike<number>): void;
  /** out[start + i] = fround(src[start + i] * factor) for i < length. */
  scaleInto(out: Float32Array, src: Float64Array, start: number, length: number, factor: number): void;
}

// The few WebAssembly JS API members used here (the repository's lib settings carry no WebAssembly
// types: they come with lib.dom, which server code must not pull in).
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { readonly exports: Record<string, unknown> };
}
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}

type SumKernel = (n: number, w0: number, w1: number, w2: number, w3: number, w4: number, w5: number, w6: number, w7: number) => void;
type ScaleKernel = (n: number, factor: number) => void;

// Memory layout: accumulator block (float64) at 0, then MAX_FUSED_ROWS row blocks (float32).
const rowBase = (block: number, j: number): number => 8 * block + 4 * block * j;

/** sum<k>(n, w0..w7): acc[i] += w0 r0[i] + ... + w(k-1) r(k-1)[i] for i < n rounded up to 4. */
function sumKernel(k: number, block: number): FunctionDef {
  const N = 0, Q = 9, END = 10, A = 11, W = 12; // locals: params n, w0..w7; q, end, a, W0..W(k-1)
  const c = new Code();
  // end = ceil4(n) * 4 bytes: the lanes past n compute values that are never copied back.
  c.get(N).i32(3).emit(op.i32Add).i32(-4).emit(op.i32And).i32(2).emit(op.i32Shl).set(END);
  for (let j = 0; j < k; j++) c.get(1 + j).simd(simd.f64x2Splat).set(W + j);
  c.emit(op.block, 0x40, op.loop, 0x40);
  c.get(Q).get(END).emit(op.i32GeU, op.brIf, 1);
  c.get(Q).i32(1).emit(op.i32Shl).set(A); // float64 byte offset of the same element
  for (const half of [0, 8]) {
    c.get(A).get(A).mem(simd.v128Load, 4, 2 * half);
    for (let j = 0; j < k; j++) {
      c.get(Q).mem(simd.v128Load64Zero, 3, rowBase(block, j) + half).simd(simd.f64x2PromoteLowF32x4);
      c.get(W + j).simd(simd.f64x2Mul);
      if (j > 0) c.simd(simd.f64x2Add);
    }
    c.simd(simd.f64x2Add).mem(simd.v128Store, 4, 2 * half);
  }
  c.get(Q).i32(16).emit(op.i32Add).set(Q);
  c.emit(op.br, 0, op.end, op.end);
  return {
    name: `sum${k}`,
    params: [I32, F64, F64, F64, F64, F64, F64, F64, F64],
    results: [],
    locals: [I32, I32, I32, ...Array<number>(k).fill(V128)],
    body: c,
  };
}

/** scale(n, factor): row block 0 [i] = fround(acc[i] * factor) for i < n rounded up to 2. */
function scaleKernel(block: number): FunctionDef {
  const N = 0, FACTOR = 1, Q = 2, END = 3, F = 4;
  const c = new Code();
  c.get(N).i32(1).emit(op.i32Add).i32(-2).emit(op.i32And).i32(2).emit(op.i32Shl).set(END);
  c.get(FACTOR).simd(simd.f64x2Splat).set(F);
  c.emit(op.block, 0x40, op.loop, 0x40);
  c.get(Q).get(END).emit(op.i32GeU, op.brIf, 1);
  c.get(Q);
  c.get(Q).i32(1).emit(op.i32Shl).mem(simd.v128Load, 4, 0).get(F).simd(simd.f64x2Mul);
  c.simd(simd.f32x4DemoteF64x2Zero).mem(simd.v128Store64Lane, 3, rowBase(block, 0), 0);
  c.get(Q).i32(8).emit(op.i32Add).set(Q);
  c.emit(op.br, 0, op.end, op.end);
  return { name: 'scale', params: [I32, F64], results: [], locals: [I32, I32, V128], body: c };
}

/** The kernel module's bytes for a block length (a multiple of 4). */
export function kernelModuleBytes(block: number): Uint8Array {
  const bytes = rowBase(block, MAX_FUSED_ROWS);
  const fns = GROUP_SIZES.map((g) => sumKernel(g, block));
  fns.push(scaleKernel(block));
  return encodeModule(Math.ceil(bytes / 65536), fns);
}

/**
 * Instantiates the SIMD kernels, or returns undefined where WebAssembly SIMD is unavailable (the
 * caller then keeps the scalar loops). Synchronous: the module is a few KiB.
 */
export function createWasmKernels(blockLength: number = DEFAULT_BLOCK_LENGTH): WasmKernels | undefined {
  if (!Number.isInteger(blockLength) || blockLength < 4 || blockLength % 4 !== 0) {
    throw new RangeError(`blockLength must be a positive multiple of 4, got ${blockLength}`);
  }
  const bytes = kernelModuleBytes(blockLength);
  const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (wasm === undefined || !wasm.validate(bytes)) return undefined;
  const exports = new wasm.Instance(new wasm.Module(bytes)).exports;
  const memory = exports['memory'] as WasmMemory;
  const B = blockLength;
  const accBlock = new Float64Array(memory.buffer, 0, B);
  const rowBlocks = Array.from({ length: MAX_FUSED_ROWS }, (_, j) => new Float32Array(memory.buffer, rowBase(B, j), B));
  const sums: Record<number, SumKernel> = {};
  for (const g of GROUP_SIZES) sums[g] = exports[`sum${g}`] as SumKernel;
  const scale = exports['scale'] as ScaleKernel;
  const w = new Float64Array(MAX_FUSED_ROWS);

  return Object.freeze({
    blockLength: B,

    weightedSumInto(acc: Float64Array, offset: number, rows: readonly Float32Array[], weights: ArrayLike<number>): void {
      const n = rows[0]?.length ?? 0;
      const k = rows.length;
      for (let b = 0; b < n; b += B) {
        const m = Math.min(B, n - b);
        const whole = b === 0 && m === n;
        accBlock.set(acc.subarray(offset + b, offset + b + m));
        // Groups of 8, then 4, 2, 1 rows: the scalar loop's grouping, hence its rounding.
        for (let j = 0; j < k; ) {
          const g = k - j >= 8 ? 8 : k - j >= 4 ? 4 : k - j >= 2 ? 2 : 1;
          for (let r = 0; r < g; r++) {
            const row = rows[j + r]!;
            rowBlocks[r]!.set(whole ? row : row.subarray(b, b + m));
            w[r] = weights[j + r]!;
          }
          sums[g]!(m, w[0]!, w[1]!, w[2]!, w[3]!, w[4]!, w[5]!, w[6]!, w[7]!);
          j += g;
        }
        acc.set(m === B ? accBlock : accBlock.subarray(0, m), offset + b);
      }
    },

    scaleInto(out: Float32Array, src: Float64Array, start: number, length: number, factor: number): void {
      const row = rowBlocks[0]!;
      for (let b = 0; b < length; b += B) {
        const m = Math.min(B, length - b);
        accBlock.set(src.subarray(start + b, start + b + m));
        scale(m, factor);
        out.set(m === B ? row : row.subarray(0, m), start + b);
      }
    },
  });
}
