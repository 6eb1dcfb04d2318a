import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c, crc32cHex } from './crc32c.js';

// Reference: bit-at-a-time CRC-32C, independent of the table construction.
function slow(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

test('crc32c check value of "123456789" is 0xE3069283', () => {
  assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
  assert.equal(crc32cHex(new TextEncoder().encode('123456789')), 'e3069283');
});

test('crc32c of empty input is 0 and of 32 zero bytes is the RFC 3720 value', () => {
  assert.equal(crc32c(new Uint8Array(0)), 0);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
});

test('crc32c matches the bitwise reference at every length and offset, and continues across pieces', () => {
  const buf = new Uint8Array(200);
  for (let i = 0; i < buf.length; i++) buf[i] = (i * 73 + 19) & 0xff;
  for (let start = 0; start < 9; start++) {
    for (let len = 0; len + start <= buf.length; len += 7) {
      const part = buf.subarray(start, start + len);
      assert.equal(crc32c(part), slow(part), `start ${start} len ${len}`);
    }
  }
  for (let cut = 0; cut <= buf.length; cut += 13) {
    assert.equal(crc32c(buf.subarray(cut), crc32c(buf.subarray(0, cut))), crc32c(buf));
  }
});
