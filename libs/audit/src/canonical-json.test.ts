import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalJson } from './canonical-json.js';

test('serializes the RFC 8785 example exactly', () => {
  const input = JSON.parse(
    '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}',
  ) as unknown;
  assert.equal(
    canonicalJson(input),
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
  );
});

test('sorts keys by UTF-16 code units at every depth and drops undefined properties', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [1, { z: 0, y: -0 }], c: undefined }, '\u00e9': 2, A: 3 }), '{"A":3,"a":{"d":[1,{"y":0,"z":0}]},"b":1,"é":2}');
  assert.equal(canonicalJson({ '\ud83d\ude00': 1, '\ufb33': 2 }), '{"😀":1,"דּ":2}');
});

test('refuses values that have no single canonical form', () => {
  for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, '\ud800x', new Date(0), [undefined], 10n, () => 1, new Uint8Array(1)]) {
    assert.throws(() => canonicalJson({ v: bad }), /canonical|JSON values only|plain JSON|undefined/, String(bad));
  }
});
