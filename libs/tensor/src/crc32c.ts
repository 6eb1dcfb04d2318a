/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), slice-by-16. This is the checksum of
 * upload chunks and Kafka update chunks (and the one Kafka uses for record batches).
 */

const POLY = 0x82f63b78;

// Sixteen 256-entry tables: T[k][b] is the CRC of byte b followed by k zero bytes. Separate
// arrays (not offsets into one) let the JIT keep each table's base in a register.
const T = (() => {
  const all = new Int32Array(16 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? (c >>> 1) ^ POLY : c >>> 1;
    all[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = all[n]!;
    for (let k = 1; k < 16; k++) {
      c = all[c & 0xff]! ^ (c >>> 8);
      all[k * 256 + n] = c;
    }
  }
  return Array.from({ length: 16 }, (_, k) => all.subarray(k * 256, k * 256 + 256));
})();
const [T0, T1, T2, T3, T4, T5, T6, T7, T8, T9, Ta, Tb, Tc, Td, Te, Tf] = T as [
  Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array,
  Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array,
];

/**
 * CRC-32C of `data` as an unsigned 32-bit number (slice-by-16). Pass the previous result as
 * `previous` to continue over the next piece: crc32c(b, crc32c(a)) === crc32c(a ++ b).
 */
export function crc32c(data: Uint8Array, previous = 0): number {
  let crc = ~previous;
  let i = 0;
  const n = data.length;
  const end16 = n - (n & 15);
  while (i < end16) {
    crc ^= data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    crc =
      Tf[crc & 0xff]! ^ Te[(crc >>> 8) & 0xff]! ^ Td[(crc >>> 16) & 0xff]! ^ Tc[crc >>> 24]! ^
      Tb[data[i + 4]!]! ^ Ta[data[i + 5]!]! ^ T9[data[i + 6]!]! ^ T8[data[i + 7]!]! ^
      T7[data[i + 8]!]! ^ T6[data[i + 9]!]! ^ T5[data[i + 10]!]! ^ T4[data[i + 11]!]! ^
      T3[data[i + 12]!]! ^ T2[data[i + 13]!]! ^ T1[data[i + 14]!]! ^ T0[data[i + 15]!]!;
    i += 16;
  }
  while (i < n) crc = T0[(crc ^ data[i++]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

/** CRC-32C as the 8 lower-case hex digits used in chunk headers. */
export function crc32cHex(data: Uint8Array): string {
  return crc32c(data).toString(16).padStart(8, '0');
}
