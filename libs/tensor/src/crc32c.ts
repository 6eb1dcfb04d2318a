/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), slice-by-8. This is the checksum of
 * upload chunks and Kafka update chunks (and the one Kafka uses for record batches).
 */

const POLY = 0x82f63b78;

// Eight 256-entry tables in one array: TABLE[k * 256 + b] is the CRC of byte b followed by k zero bytes.
const TABLE = (() => {
  const t = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? (c >>> 1) ^ POLY : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n]!;
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff]! ^ (c >>> 8);
      t[k * 256 + n] = c;
    }
  }
  return t;
})();

/**
 * CRC-32C of `data` as an unsigned 32-bit number. Pass the previous result as `previous` to
 * continue over the next piece: crc32c(b, crc32c(a)) === crc32c(a ++ b).
 */
export function crc32c(data: Uint8Array, previous = 0): number {
  const t = TABLE;
  let crc = ~previous;
  let i = 0;
  const n = data.length;
  const end8 = n - (n & 7);
  while (i < end8) {
    const lo = crc ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24));
    crc =
      t[1792 + (lo & 0xff)]! ^ t[1536 + ((lo >>> 8) & 0xff)]! ^ t[1280 + ((lo >>> 16) & 0xff)]! ^ t[1024 + (lo >>> 24)]! ^
      t[768 + data[i + 4]!]! ^ t[512 + data[i + 5]!]! ^ t[256 + data[i + 6]!]! ^ t[data[i + 7]!]!;
    i += 8;
  }
  while (i < n) crc = t[(crc ^ data[i++]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

/** CRC-32C as the 8 lower-case hex digits used in chunk headers. */
export function crc32cHex(data: Uint8Array): string {
  return crc32c(data).toString(16).padStart(8, '0');
}
