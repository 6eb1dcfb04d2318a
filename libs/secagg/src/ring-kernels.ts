import { endianness } from 'node:os';
import { Code, F64, I32, V128, encodeModule, f64Bytes, webAssembly, type FunctionDef } from '@fedmm/wasm';

// WebAssembly SIMD kernels for the two hot loops of masking: adding a keystream slice into a
// vector mod 2^32 (i32x4.add, four words per instruction, where the scalar loop goes through a
// float64 per word) and the fixed-point encoding with stochastic rounding (f64x2, branch-free:
// the scalar loop's data-dependent branches on random coins mispredict about half the time).
// WebAssembly reads only its own memory, so callers stage one slice of each operand (a few
// dozen KiB, cache-resident) into the blocks below and copy the result back.
//
// The module is written in code, a few hundred bytes, so that it can be read and reviewed here;
// there is no build step and no binary blob.

/** Words per staged block: two 64 KiB blocks (target and keystream) stay in L2. */
export const BLOCK_WORDS = 1 << 14;
const BLOCK_BYTES = BLOCK_WORDS * 4;
const PAGE = 65536;

// Memory layout: target words, keystream words, float32 values, uint32 rounding coins.
const TARGET = 0;
const STREAM = BLOCK_BYTES;
const VALUES = 2 * BLOCK_BYTES;
const COINS = 3 * BLOCK_BYTES;
const MEMORY_PAGES = Math.ceil((4 * BLOCK_BYTES) / PAGE);

/** Staged blocks and kernels of one instance; every count is in words and at most BLOCK_WORDS. */
export interface RingKernels {
  /** The target block: add/subtract work on it in place, encode writes it. */
  readonly target: Uint32Array;
  /** The keystream block, as bytes (a keystream slice is copied in as it comes from the cipher). */
  readonly stream: Uint8Array;
  /** The float32 input block of encode. */
  readonly values: Float32Array;
  /** The rounding-coin block of encode, as bytes (filled straight from the random source). */
  readonly coins: Uint8Array;
  /** The same rounding coins, as words. */
  readonly coinWords: Uint32Array;
  /** target[i] += stream[i] mod 2^32 for i < count. */
  add(count: number): void;
  /** target[i] -= stream[i] mod 2^32 for i < count. */
  subtract(count: number): void;
  /**
   * target[i] = the encoding of values[i] for i < count & ~3 (see encodeScalar); returns false,
   * with the block in an unspecified state, if some values[i] there is not finite.
   */
  encode(count: number, clipRange: number, scale: number, shift: number, levels: number): boolean;
}

// Opcodes (core, then SIMD after the 0xfd prefix).
const I32_ADD = 0x6a, I32_SHL = 0x74, I32_AND = 0x71, F64_CONST = 0x44, F64_ADD = 0xa0, F64_SUB = 0xa1, F64_EQ = 0x61;
const V128_LOAD = 0x00, V128_STORE = 0x0b, V128_LOAD64_ZERO = 0x5d, V128_STORE64_LANE = 0x5b;
const F64X2_SPLAT = 0x14, F64X2_EXTRACT_LANE = 0x21, I32X4_ADD = 0xae, I32X4_SUB = 0xb1;
const F64X2_PROMOTE_LOW_F32X4 = 0x5f, F64X2_CONVERT_LOW_I32X4_U = 0xff, I32X4_TRUNC_SAT_F64X2_U_ZERO = 0xfd;
const F64X2_CEIL = 0x74, F64X2_FLOOR = 0x75, F64X2_ADD = 0xf0, F64X2_SUB = 0xf1, F64X2_MUL = 0xf2;
const F64X2_PMIN = 0xf6, F64X2_PMAX = 0xf7;

/** add / subtract(count): target[i] op= stream[i] over whole vectors covering count words. */
function ringKernel(fnName: string, opcode: number): FunctionDef {
  const COUNT = 0, Q = 1, END_BYTE = 2;
  const c = new Code();
  // Bytes of ceil(count / 4) vectors: lanes past count are garbage that no caller reads.
  c.get(COUNT).i32(3).emit(I32_ADD).i32(-4).emit(I32_AND).i32(2).emit(I32_SHL).set(END_BYTE);
  c.loop(Q, END_BYTE, 16, () => {
    c.get(Q);
    c.get(Q).mem(V128_LOAD, 4, TARGET);
    c.get(Q).mem(V128_LOAD, 4, STREAM);
    c.simd(opcode).mem(V128_STORE, 4, TARGET);
  });
  return { name: fnName, params: [I32], results: [], locals: [I32, I32], body: c };
}

/**
 * encode(count, clipRange, scale, shift, levels) -> all finite. Per pair of coordinates, in
 * float64 exactly as encodeScalar: y = clip(x), q = y * scale + shift, f = floor(q), and
 * f + ceil(((q - f) * 2^32 - coin) / 2^32), which is f + 1 exactly when coin < (q - f) * 2^32,
 * capped at levels.
 */
function encodeKernel(): FunctionDef {
  const COUNT = 0, CLIP = 1, SCALE = 2, SHIFT = 3, LEVELS = 4;
  const Q = 5, END_BYTE = 6, LO = 7, HI = 8, SC = 9, SH = 10, LV = 11, RING = 12, INV = 13, BAD = 14, X = 15, QV = 16, FL = 17;
  const c = new Code();
  c.get(COUNT).i32(-4).emit(I32_AND).i32(2).emit(I32_SHL).set(END_BYTE);
  c.get(CLIP).simd(F64X2_SPLAT).set(HI);
  c.emit(F64_CONST, ...f64Bytes(0)).get(CLIP).emit(F64_SUB).simd(F64X2_SPLAT).set(LO); // 0 - clipRange
  c.get(SCALE).simd(F64X2_SPLAT).set(SC);
  c.get(SHIFT).simd(F64X2_SPLAT).set(SH);
  c.get(LEVELS).simd(F64X2_SPLAT).set(LV);
  c.emit(F64_CONST, ...f64Bytes(2 ** 32)).simd(F64X2_SPLAT).set(RING);
  c.emit(F64_CONST, ...f64Bytes(2 ** -32)).simd(F64X2_SPLAT).set(INV);
  c.loop(Q, END_BYTE, 16, () => {
    for (const half of [0, 8]) {
      c.get(Q).mem(V128_LOAD64_ZERO, 3, VALUES + half).simd(F64X2_PROMOTE_LOW_F32X4).set(X);
      // x - x is NaN exactly for NaN and the infinities; the sum carries any NaN to the end.
      c.get(BAD).get(X).get(X).simd(F64X2_SUB).simd(F64X2_ADD).set(BAD);
      // pmin(hi, x) = x < hi ? x : hi and pmax(lo, y) = lo < y ? y : lo: the scalar clip.
      c.get(LO).get(HI).get(X).simd(F64X2_PMIN).simd(F64X2_PMAX);
      c.get(SC).simd(F64X2_MUL).get(SH).simd(F64X2_ADD).set(QV);
      c.get(QV).simd(F64X2_FLOOR).set(FL);
      c.get(Q); // store address
      c.get(FL);
      c.get(QV).get(FL).simd(F64X2_SUB).get(RING).simd(F64X2_MUL);
      c.get(Q).mem(V128_LOAD64_ZERO, 3, COINS + half).simd(F64X2_CONVERT_LOW_I32X4_U);
      c.simd(F64X2_SUB).get(INV).simd(F64X2_MUL).simd(F64X2_CEIL);
      c.simd(F64X2_ADD).get(LV).simd(F64X2_PMIN); // pmin(v, levels) = levels < v ? levels : v
      c.simd(I32X4_TRUNC_SAT_F64X2_U_ZERO).mem(V128_STORE64_LANE, 3, TARGET + half, 0);
    }
  });
  c.get(BAD).simd(F64X2_EXTRACT_LANE, 0).get(BAD).simd(F64X2_EXTRACT_LANE, 1).emit(F64_ADD);
  c.emit(F64_CONST, ...f64Bytes(0)).emit(F64_EQ);
  return {
    name: 'encode',
    params: [I32, F64, F64, F64, F64],
    results: [I32],
    locals: [I32, I32, V128, V128, V128, V128, V128, V128, V128, V128, V128, V128, V128],
    body: c,
  };
}

/** The kernel module's bytes. */
export function ringKernelModule(): Uint8Array {
  return encodeModule(MEMORY_PAGES, [ringKernel('add', I32X4_ADD), ringKernel('subtract', I32X4_SUB), encodeKernel()]);
}

/**
 * A fresh instance of the kernels with its own staging memory, or undefined where WebAssembly
 * SIMD is unavailable (callers then use the scalar loops, which compute the same words).
 */
export function createRingKernels(): RingKernels | undefined {
  // WebAssembly memory is little-endian; the typed-array views over it are in platform order.
  if (endianness() !== 'LE') return undefined;
  const wasm = webAssembly();
  if (wasm === undefined) return undefined;
  const bytes = ringKernelModule();
  if (!wasm.validate(bytes)) return undefined;
  const memory = new wasm.Memory({ initial: MEMORY_PAGES, maximum: MEMORY_PAGES });
  const exports = new wasm.Instance(new wasm.Module(bytes), { env: { memory } }).exports;
  const add = exports['add'] as (count: number) => void;
  const subtract = exports['subtract'] as (count: number) => void;
  const encode = exports['encode'] as (count: number, clip: number, scale: number, shift: number, levels: number) => number;
  return Object.freeze({
    target: new Uint32Array(memory.buffer, TARGET, BLOCK_WORDS),
    stream: new Uint8Array(memory.buffer, STREAM, BLOCK_BYTES),
    values: new Float32Array(memory.buffer, VALUES, BLOCK_WORDS),
    coins: new Uint8Array(memory.buffer, COINS, BLOCK_BYTES),
    coinWords: new Uint32Array(memory.buffer, COINS, BLOCK_WORDS),
    add: (count: number) => add(count),
    subtract: (count: number) => subtract(count),
    encode: (count: number, clipRange: number, scale: number, shift: number, levels: number) =>
      encode(count, clipRange, scale, shift, levels) === 1,
  });
}

let shared: RingKernels | undefined | null = null;

/** This thread's kernels (created on first use), or undefined where WebAssembly SIMD is unavailable. */
export function ringKernels(): RingKernels | undefined {
  if (shared === null) shared = createRingKernels();
  return shared;
}
