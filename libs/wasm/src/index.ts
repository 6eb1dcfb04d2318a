export { Code, F64, I32, V128, encodeModule, f64Bytes, op, simd, sleb, uleb, type FunctionDef } from './encoder.js';
export { webAssembly, type WasmApi, type WasmMemory } from './api.js';
