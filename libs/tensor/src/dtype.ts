import { FedmmError } from '@fedmm/core';

/**
 * Element types of safetensors (every dtype the Rust reference implementation defines with a whole
 * number of bytes). fedmm exchanges parameters only as {@link ParamDType}; the rest are read so
 * that files written by other tools open.
 */
export type DType =
  | 'BOOL' | 'U8' | 'I8' | 'F8_E5M2' | 'F8_E4M3' | 'F8_E8M0'
  | 'I16' | 'U16' | 'F16' | 'BF16'
  | 'I32' | 'U32' | 'F32'
  | 'F64' | 'I64' | 'U64';

/** The dtypes fedmm trains, uploads and aggregates in. `I8` carries a per-tensor scale: value = int8 * scale. */
export type ParamDType = 'F32' | 'F16' | 'BF16' | 'I8';

/** Parameter dtypes in a fixed order (for help texts and validation). */
export const PARAM_DTYPES: readonly ParamDType[] = Object.freeze(['F32', 'F16', 'BF16', 'I8']);

/**
 * Every dtype in the order of the Rust `Dtype` enum. The serializer sorts tensors by this rank,
 * highest first, as the reference implementation does: larger elements come first, so every
 * tensor's data stays aligned to its element size.
 */
export const DTYPES: readonly DType[] = Object.freeze([
  'BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'I16', 'U16', 'F16', 'BF16',
  'I32', 'U32', 'F32', 'F64', 'I64', 'U64',
]);

const SIZES: Readonly<Record<DType, number>> = Object.freeze({
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, F8_E8M0: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  F64: 8, I64: 8, U64: 8,
});

const RANK: ReadonlyMap<string, number> = new Map(DTYPES.map((d, i) => [d, i]));

/** The typed arrays a tensor's elements live in. F16 and BF16 are raw bit patterns in a Uint16Array. */
export type TensorData =
  | Float32Array | Float64Array | Uint16Array | Int16Array | Int8Array | Uint8Array
  | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

/** A tensor: dtype, shape and its elements in row-major order. */
export interface Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TensorData;
  /** Only for I8 parameters: value = int8 * scale. */
  readonly scale?: number;
}

/** Whether `s` names a dtype this library reads. */
export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && RANK.has(s);
}

/** Whether `s` names a dtype fedmm exchanges parameters in. */
export function isParamDType(s: unknown): s is ParamDType {
  return s === 'F32' || s === 'F16' || s === 'BF16' || s === 'I8';
}

/** Bytes per element of `dtype`. */
export function bytesPerElement(dtype: DType): number {
  return SIZES[dtype];
}

/** Position of `dtype` in the reference enum order (see {@link DTYPES}). */
export function dtypeRank(dtype: DType): number {
  return RANK.get(dtype) ?? -1;
}

/** Number of elements of a shape (1 for a scalar); throws when it is not a safe integer. */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new FedmmError('INVALID_ARGUMENT', `shape [${shape.join(', ')}] has a dimension ${String(d)} that is not a non-negative integer; give each dimension as a whole number`);
    }
    n *= d;
    if (!Number.isSafeInteger(n)) {
      throw new FedmmError('INVALID_ARGUMENT', `shape [${shape.join(', ')}] has more elements than 2^53; split the tensor`);
    }
  }
  return n;
}

/** Bytes taken by a tensor of `dtype` and `shape`. */
export function byteSize(dtype: DType, shape: readonly number[]): number {
  const n = elementCount(shape) * SIZES[dtype];
  if (!Number.isSafeInteger(n)) {
    throw new FedmmError('INVALID_ARGUMENT', `a ${dtype} tensor of shape [${shape.join(', ')}] needs more than 2^53 bytes; split the tensor`);
  }
  return n;
}

type ArrayCtor = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): TensorData;
  new (length: number): TensorData;
  readonly BYTES_PER_ELEMENT: number;
};

const CTORS: Readonly<Record<DType, ArrayCtor>> = Object.freeze({
  BOOL: Uint8Array, U8: Uint8Array, I8: Int8Array, F8_E5M2: Uint8Array, F8_E4M3: Uint8Array, F8_E8M0: Uint8Array,
  I16: Int16Array, U16: Uint16Array, F16: Uint16Array, BF16: Uint16Array,
  I32: Int32Array, U32: Uint32Array, F32: Float32Array,
  F64: Float64Array, I64: BigInt64Array, U64: BigUint64Array,
});

/** Whether `data` is the typed array that holds `dtype` (see {@link TensorData}). */
export function isDataOf(dtype: DType, data: TensorData): boolean {
  return data instanceof CTORS[dtype];
}

/** A typed-array view of `length` elements of `dtype` over `buffer` (byteOffset must be aligned). */
export function viewOf(dtype: DType, buffer: ArrayBufferLike, byteOffset: number, length: number): TensorData {
  return new CTORS[dtype](buffer, byteOffset, length);
}

/** A zero-filled typed array for `length` elements of `dtype`. */
export function allocate(dtype: DType, length: number): TensorData {
  return new CTORS[dtype](length);
}

/** The bytes of a typed array (same memory, no copy). On little-endian hosts these are the safetensors bytes. */
export function bytesOf(data: ArrayBufferView): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Builds a tensor after checking that the data type and length fit dtype and shape. */
export function makeTensor(dtype: DType, shape: readonly number[], data: TensorData, scale?: number): Tensor {
  if (!isDType(dtype)) throw new FedmmError('INVALID_ARGUMENT', `unknown dtype ${JSON.stringify(dtype)}; use one of ${DTYPES.join(', ')}`);
  const n = elementCount(shape);
  if (!isDataOf(dtype, data)) {
    throw new FedmmError('INVALID_ARGUMENT', `a ${dtype} tensor needs its data in a ${CTORS[dtype].name}, got ${data.constructor.name}`);
  }
  if (data.length !== n) {
    throw new FedmmError('INVALID_ARGUMENT', `shape [${shape.join(', ')}] has ${n} elements but the data has ${data.length}`);
  }
  if (scale !== undefined) {
    if (dtype !== 'I8') throw new FedmmError('INVALID_ARGUMENT', `only I8 tensors carry a scale, this one is ${dtype}`);
    checkScale(scale);
    return Object.freeze({ dtype, shape: Object.freeze([...shape]), data, scale });
  }
  return Object.freeze({ dtype, shape: Object.freeze([...shape]), data });
}

/** Throws unless `scale` is a positive finite number (an int8 scale that can be dequantized). */
export function checkScale(scale: number): void {
  if (typeof scale !== 'number' || !Number.isFinite(scale) || scale <= 0) {
    throw new FedmmError('INVALID_ARGUMENT', `int8 scale ${String(scale)} is not a positive finite number; quantize with quantizeInt8`);
  }
}

// Scratch space for bit casts between float32 and its bits.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** float32 -> IEEE 754 binary16 bits, rounding to nearest even; handles subnormals, overflow to inf, NaN. */
export function f32ToF16Bits(x: number): number {
  scratchF32[0] = x;
  const b = scratchU32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return mant !== 0 ? sign | 0x7e00 | (mant >>> 13) : sign | 0x7c00;
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // |x| < 2^-25 rounds to zero; 2^-25 itself is a tie that goes to the even zero.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rem = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa bumps the exponent, which is the right result (up to inf).
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
  return sign | h;
}

/** IEEE 754 binary16 bits -> number (exact). */
export function f16BitsToF32(h: number): number {
  const sign = (h & 0x8000) !== 0 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? NaN : sign * Infinity;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/** float32 -> bfloat16 bits, rounding to nearest even; NaN stays a (quiet) NaN. */
export function f32ToBf16Bits(x: number): number {
  scratchF32[0] = x;
  const b = scratchU32[0]!;
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return (b >>> 16) | 0x40;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** bfloat16 bits -> number (exact). */
export function bf16BitsToF32(h: number): number {
  scratchU32[0] = (h & 0xffff) << 16;
  return scratchF32[0]!;
}

let f16Table: Float32Array | undefined;
function f16Lookup(): Float32Array {
  if (f16Table === undefined) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16BitsToF32(i);
  }
  return f16Table;
}

function checkOut<T extends { length: number }>(what: string, out: T, n: number): T {
  if (out.length !== n) throw new FedmmError('INVALID_ARGUMENT', `${what}: output has ${out.length} elements, input ${n}; pass an output of the same length`);
  return out;
}

/** Float32 values -> F16 bit patterns (round to nearest even). */
export function encodeF16(src: Float32Array, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  checkOut('encodeF16', out, src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]!);
  return out;
}

/** F16 bit patterns -> Float32 values (exact). */
export function decodeF16(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  checkOut('decodeF16', out, src.length);
  const t = f16Lookup();
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]!]!;
  return out;
}

/** Float32 values -> BF16 bit patterns (round to nearest even). */
export function encodeBf16(src: Float32Array, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  checkOut('encodeBf16', out, src.length);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    const b = bits[i]!;
    out[i] = (b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0
      ? (b >>> 16) | 0x40
      : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

/** BF16 bit patterns -> Float32 values (exact). */
export function decodeBf16(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  checkOut('decodeBf16', out, src.length);
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
  return out;
}

/** Symmetric per-tensor int8 quantization: scale = max|x| / 127, q = round-half-even(x / scale). */
export function quantizeInt8(src: Float32Array, out: Int8Array = new Int8Array(src.length)): { values: Int8Array; scale: number } {
  checkOut('quantizeInt8', out, src.length);
  let maxAbs = 0;
  for (let i = 0; i < src.length; i++) {
    const v = src[i]!;
    if (!Number.isFinite(v)) throw new FedmmError('INVALID_ARGUMENT', `cannot quantize a non-finite value (${v}) at element ${i}; clip or drop the update`);
    const a = Math.abs(v);
    if (a > maxAbs) maxAbs = a;
  }
  // An all-zero tensor still gets a valid scale so that the file stays loadable.
  const scale = maxAbs > 0 ? maxAbs / 127 : 1;
  const inv = 1 / scale;
  for (let i = 0; i < src.length; i++) {
    const x = src[i]! * inv;
    let q = Math.round(x);
    if (q - x === 0.5 && (q & 1) !== 0) q -= 1;
    out[i] = q > 127 ? 127 : q < -127 ? -127 : q;
  }
  return { values: out, scale };
}

/** int8 values * scale -> Float32 values. */
export function dequantizeInt8(values: Int8Array, scale: number, out: Float32Array = new Float32Array(values.length)): Float32Array {
  checkScale(scale);
  checkOut('dequantizeInt8', out, values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i]! * scale;
  return out;
}

/** A parameter tensor's values as Float32 (a copy for F16, BF16 and I8; the same array for F32). */
export function toFloat32(t: Tensor): Float32Array {
  switch (t.dtype) {
    case 'F32': return t.data as Float32Array;
    case 'F16': return decodeF16(t.data as Uint16Array);
    case 'BF16': return decodeBf16(t.data as Uint16Array);
    case 'I8':
      if (t.scale === undefined) throw new FedmmError('INVALID_ARGUMENT', 'an I8 tensor without a scale cannot be read as float; store the scale with the tensor');
      return dequantizeInt8(t.data as Int8Array, t.scale);
    default:
      throw new FedmmError('INVALID_ARGUMENT', `a ${t.dtype} tensor is not a parameter tensor; fedmm reads parameters as ${PARAM_DTYPES.join(', ')}`);
  }
}

/** Float32 values -> a tensor of the parameter dtype `dtype` (I8 gets a fresh scale). */
export function fromFloat32(values: Float32Array, shape: readonly number[], dtype: ParamDType): Tensor {
  switch (dtype) {
    case 'F32': return makeTensor('F32', shape, values);
    case 'F16': return makeTensor('F16', shape, encodeF16(values));
    case 'BF16': return makeTensor('BF16', shape, encodeBf16(values));
    case 'I8': {
      const q = quantizeInt8(values);
      return makeTensor('I8', shape, q.values, q.scale);
    }
    default:
      throw new FedmmError('INVALID_ARGUMENT', `unknown parameter dtype ${JSON.stringify(dtype)}; use one of ${PARAM_DTYPES.join(', ')}`);
  }
}
