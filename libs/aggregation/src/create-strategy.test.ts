import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FedmmError } from '@fedmm/core';
import { createStrategy } from './create-strategy.js';
import { NormClipping } from './strategies/norm-clipping.js';

describe('createStrategy', () => {
  it('builds each named strategy with its coordination and memory class', () => {
    const cases = [
      [{ name: 'fedavg' }, 'fedavg', 'none', false],
      [{ name: 'fedprox', mu: 0.1 }, 'fedprox', 'none', false],
      [{ name: 'fedadam', eta: 0.01 }, 'fedadam', 'none', false],
      [{ name: 'fedyogi' }, 'fedyogi', 'none', false],
      [{ name: 'fedadagrad' }, 'fedadagrad', 'none', false],
      [{ name: 'median' }, 'median', 'none', true],
      [{ name: 'trimmed-mean', beta: 0.1 }, 'trimmed-mean', 'none', true],
      [{ name: 'krum', byzantine: 1 }, 'krum', 'distances', true],
      [{ name: 'multi-krum', byzantine: 1, keep: 3 }, 'multi-krum', 'distances', true],
      [{ name: 'fedavg', clipNorm: 2 }, 'clipped-fedavg', 'norms', true],
    ] as const;
    for (const [config, name, coordination, holds] of cases) {
      const s = createStrategy(config);
      assert.equal(s.name, name);
      assert.equal(s.coordination, coordination);
      assert.equal(s.holdsAllValues, holds);
    }
    const clipped = createStrategy({ name: 'fedadam', clipNorm: 1, etaL: 0.3 });
    assert.ok(clipped instanceof NormClipping);
    assert.deepEqual(clipped.clientConfig(), { learning_rate: 0.3 });
    assert.throws(() => createStrategy({ name: 'bulyan' } as never), (e: unknown) => e instanceof FedmmError && /unknown strategy 'bulyan'/.test(e.message));
  });
});
