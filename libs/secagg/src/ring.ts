import { invalidArgument } from '@fedmm/core';

// Masked vectors live in the integers mod 2^32. A Uint32Array store applies ToUint32 to the
// double it is given, which is exactly reduction mod 2^32 for sums and differences of two
// uint32 values, so the loops below need no explicit `>>> 0`.

/** Adds `values` into `acc` mod 2^32, starting at word `at` of `acc`. */
export function addInto(acc: Uint32Array, values: Uint32Array, at = 0): void {
  checkSpan(acc, values, at);
  const n = values.length;
  for (let i = 0; i < n; i++) acc[at + i] = acc[at + i]! + values[i]!;
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
