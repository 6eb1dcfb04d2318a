import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileConfig, ConfigError } from './config.js';

test('config compiles typed, frozen values with defaults', () => {
  const cfg = compileConfig({ PORT: '8080', MODE: 'kafka', FLAG: 'yes', LIST: 'a, b,,c' }, (r) => ({
    port: r.int('PORT', 1, { min: 1, max: 65535 }),
    mode: r.oneOf('MODE', ['kafka', 'embedded'] as const, 'embedded'),
    flag: r.bool('FLAG', false),
    list: r.list('LIST', []),
    nested: { name: r.string('NAME', 'x') },
  }));
  assert.deepEqual(cfg, { port: 8080, mode: 'kafka', flag: true, list: ['a', 'b', 'c'], nested: { name: 'x' } });
  assert.ok(Object.isFrozen(cfg.nested));
});

test('every bad variable is named with what is allowed', () => {
  try {
    compileConfig({ PORT: 'eighty', MODE: 'rabbit', FLAG: 'maybe', BIG: '70000' }, (r) => ({
      port: r.int('PORT', 1),
      mode: r.oneOf('MODE', ['kafka', 'embedded'] as const, 'embedded'),
      flag: r.bool('FLAG', false),
      big: r.int('BIG', 1, { max: 65535 }),
      req: r.string('REQUIRED_THING'),
    }));
    assert.fail('expected ConfigError');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.problems.length, 5);
    assert.match(e.message, /PORT="eighty" is not an integer/);
    assert.match(e.message, /MODE="rabbit" is not allowed \(use one of: kafka, embedded\)/);
    assert.match(e.message, /FLAG="maybe" is not a boolean/);
    assert.match(e.message, /BIG=70000 is above the maximum 65535/);
    assert.match(e.message, /REQUIRED_THING is required/);
  }
});
