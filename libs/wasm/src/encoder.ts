// A minimal WebAssembly binary encoder: just what the SIMD kernels need (one memory, functions of
// numeric parameters, SIMD opcodes). Writing the module in code keeps the kernels readable and
// reviewable in the repository instead of shipping an opaque blob or a build-time tool.

export const I32 = 0x7f;
export const F64 = 0x7c;
export const V128 = 0x7b;
/** The empty block type. */
const VOID = 0x40;

/** Opcodes used by the kernels (single-byte core ones; SIMD ones follow the 0xfd prefix). */
export const op = Object.freeze({
  block: 0x02, loop: 0x03, br: 0x0c, brIf: 0x0d, end: 0x0b,
  localGet: 0x20, localSet: 0x21, localTee: 0x22,
  i32Const: 0x41, i32GeU: 0x4f, i32Add: 0x6a, i32And: 0x71, i32Shl: 0x74,
});
export const simd = Object.freeze({
  v128Load: 0, v128Store: 11, f64x2Splat: 20, v128Load64Zero: 93, v128Store64Lane: 91,
  f32x4DemoteF64x2Zero: 94, f64x2PromoteLowF32x4: 95, f64x2Add: 240, f64x2Mul: 242,
});

/** Unsigned LEB128. */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 of a 32-bit integer. */
export function sleb(n: number): number[] {
  const out: number[] = [];
  n |= 0;
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function name(s: string): number[] {
  const bytes = [...Buffer.from(s, 'utf8')];
  return [...uleb(bytes.length), ...bytes];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

/** Instruction builder for one function body. */
export class Code {
  readonly bytes: number[] = [];
  emit(...b: number[]): this {
    this.bytes.push(...b);
    return this;
  }
  get(local: number): this {
    return this.emit(op.localGet, ...uleb(local));
  }
  set(local: number): this {
    return this.emit(op.localSet, ...uleb(local));
  }
  i32(value: number): this {
    return this.emit(op.i32Const, ...sleb(value));
  }
  simd(opcode: number, ...immediates: number[]): this {
    return this.emit(0xfd, ...uleb(opcode), ...immediates);
  }
  /** A SIMD memory access: alignment as log2 bytes, then a constant byte offset. */
  mem(opcode: number, alignLog2: number, offset: number, ...lane: number[]): this {
    return this.simd(opcode, ...uleb(alignLog2), ...uleb(offset), ...lane);
  }
  /** `for (q = 0; q < end; q += step) body()`, with q and end i32 locals (q starts at zero). */
  loop(q: number, end: number, step: number, body: () => void): this {
    this.emit(op.block, VOID, op.loop, VOID);
    this.get(q).get(end).emit(op.i32GeU, op.brIf, 1);
    body();
    this.get(q).i32(step).emit(op.i32Add).set(q);
    return this.emit(op.br, 0, op.end, op.end);
  }
}

/** The little-endian bytes of a float64 immediate (f64.const). */
export function f64Bytes(x: number): number[] {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(x);
  return [...b];
}

/** One exported function: parameter and result types, extra locals, and its body. */
export interface FunctionDef {
  readonly name: string;
  readonly params: readonly number[];
  readonly results: readonly number[];
  readonly locals: readonly number[];
  readonly body: Code;
}

/** Encodes a module that imports its memory as env.memory (at least `minPages` 64 KiB pages). */
export function encodeModule(minPages: number, functions: readonly FunctionDef[]): Uint8Array {
  const types = functions.map((f) => [0x60, ...vec(f.params.map((t) => [t])), ...vec(f.results.map((t) => [t]))]);
  const codes = functions.map((f) => {
    const locals = vec(f.locals.map((t) => [1, t]));
    const body = [...locals, ...f.body.bytes, op.end];
    return [...uleb(body.length), ...body];
  });
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, ...uleb(minPages)]])),
    ...section(3, vec(functions.map((_, i) => uleb(i)))),
    ...section(7, vec(functions.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]))),
    ...section(10, vec(codes)),
  ]);
}
