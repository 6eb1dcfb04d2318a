import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FedmmError, invalidArgument, isFedmmError } from './errors.js';

test('domain errors carry code, message and frozen details', () => {
  const e = invalidArgument('tensor "a" has shape [2] but the task expects [3]', { tensor: 'a' });
  assert.ok(isFedmmError(e));
  assert.ok(e instanceof FedmmError);
  assert.equal(e.code, 'INVALID_ARGUMENT');
  assert.equal(e.details['tensor'], 'a');
  assert.throws(() => { (e.details as Record<string, unknown>)['tensor'] = 'b'; });
});
