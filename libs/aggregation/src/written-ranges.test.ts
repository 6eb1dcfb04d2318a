import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rng } from './testing/fixtures.js';
import { WrittenRanges } from './written-ranges.js';

describe('WrittenRanges', () => {
  it('says none, all or the gaps, and merges ranges that touch', () => {
    const w = new WrittenRanges();
    assert.equal(w.mark(10, 20), 'none');
    assert.equal(w.mark(30, 40), 'none');
    assert.equal(w.mark(20, 30), 'none', 'touching is not overlapping');
    assert.deepEqual(w.ranges(), [[10, 40]]);
    assert.equal(w.mark(12, 38), 'all');
    assert.deepEqual(w.mark(5, 45), { gaps: [5, 10, 40, 45] });
    assert.equal(w.mark(60, 70), 'none');
    assert.deepEqual(w.mark(0, 100), { gaps: [0, 5, 45, 60, 70, 100] });
    assert.deepEqual(w.ranges(), [[0, 100]]);
  });

  it('agrees with a per-element bitmap on random ranges', () => {
    const rand = rng(5);
    const w = new WrittenRanges();
    const bits = new Uint8Array(500);
    for (let t = 0; t < 400; t++) {
      const a = Math.floor(rand() * 500);
      const b = Math.min(500, a + 1 + Math.floor(rand() * 40));
      const before = bits.slice(a, b);
      const unwritten: number[] = [];
      for (let i = a; i < b; i++) {
        if (bits[i] === 0 && (i === a || bits[i - 1] === 1)) unwritten.push(i);
        if (bits[i] === 0 && (i === b - 1 || bits[i + 1] === 1)) unwritten.push(i + 1);
      }
      const expected = before.every((x) => x === 0) ? 'none' : before.every((x) => x === 1) ? 'all' : { gaps: unwritten };
      assert.deepEqual(w.mark(a, b), expected, `mark(${a}, ${b})`);
      bits.fill(1, a, b);
      for (const [s, e] of w.ranges()) for (let i = s; i < e; i++) assert.equal(bits[i], 1);
      assert.equal(w.ranges().reduce((n, [s, e]) => n + e - s, 0), bits.reduce((n, x) => n + x, 0));
    }
  });
});
