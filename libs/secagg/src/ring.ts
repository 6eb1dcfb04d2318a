import { invalidArgument } from '@fedmm/core';
import { BLOCK_WORDS, ringKernels } from './ring-kernels.js';

// Below this many words the scalar loop costs less than staging through the kernels.
const MIN_STAGED_WORDS = 256;

// Masked vectors live in the integers mod 2^32. A Uint32Array store applies ToUint32 to the
// double it is given, which is exactly reduction mod 2^32 for sums and differences of two
// uint32 values, so the loops below need no explicit `>>> 0`.

/** Adds `values` into `acc` mod 2^32, starting at word `at` of `acc`. */
export function addInto(acc: Uint32Array, values: Uint32Array, at = 0): void {
  checkSpan(acc, values, at);
  const kernels = ringKernels();
  const n = values.length;
  if (kernels === undefined || n < MIN_STAGED_WORDS) {
    for (let i = 0; i < n; i++) acc[at + i] = acc[at + i]! + values[i]!;
    return;
  }
  for (let i = 0; i < n; i += BLOCK_WORDS) {
    const m = Math.min(BLOCK_WORDS, n - i);
    kernels.target.set(acc.subarray(at + i, at + i + m));
    kernels.stream.set(new Uint8Array(values.buffer, values.byteOffset + 4 * i, 4 * m));
    kernels.add(m);
    acc.set(kernels.target.subarray(0, m), at + i);
  }
}

/** Subtracts `values` from `acc` mod 2^32, starting at word `at` of `acc`. */
export function subtractFrom(acc: Uint32Array, values: Uint32Array, at = 0): void {
  checkSpan(acc, values, at);
  const n = values.length;
  for (let i = 0; i < n; i++) acc[at + i] = acc[at + i]! - values[i]!;
}

function checkSpan(acc: Uint32Array, values: Uint32Array, at: number): void {
  if (!Number.isInteger(at) || at < 0 || at + values.length > acc.length) {
    throw invalidArgument(
      `cannot add ${values.length} words at offset ${at} into a vector of ${acc.length} words; ` +
        'check the chunk offset against the shard range',
    );
  }
}
