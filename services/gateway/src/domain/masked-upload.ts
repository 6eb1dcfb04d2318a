import { FedmmError } from '@fedmm/core';
import type { UploadHeaderInfo, UploadPolicy } from './types.js';
import { planUpdate, roundLayoutOf, type UpdatePlan } from './update-plan.js';

/**
 * Plans the upload of a secure-aggregation round. Its payload is the client's masked vector: one
 * uint32 word per coordinate of the round's layout, in layout order, declared as every tensor of
 * the round with dtype F32 (4-byte words; the protocol has no uint32 dtype). The words are uniform
 * mod 2^32, so only length and dtype are checked; finiteness and norm do not apply to them.
 */
export function planMaskedUpload(header: UploadHeaderInfo, policy: UploadPolicy): UpdatePlan {
  const round = roundLayoutOf(policy);
  const want = round.entries.map((e) => e.name);
  const got = header.tensors.map((t) => t.name);
  if (got.length !== want.length || got.some((n, i) => n !== want[i])) {
    throw new FedmmError('INVALID_ARGUMENT', `round ${header.round} of task ${header.taskId} uses secure aggregation: the upload must be the masked vector over every tensor of the round in layout order [${want.join(', ')}], got [${got.join(', ')}]`);
  }
  const wrong = header.tensors.find((t) => t.dtype !== 'F32');
  if (wrong) {
    throw new FedmmError('INVALID_ARGUMENT', `tensor ${JSON.stringify(wrong.name)} is declared ${wrong.dtype}; a masked vector is sent as 4-byte words, declared F32`, { tensor: wrong.name });
  }
  return Object.freeze({ ...planUpdate(header, policy, round), masked: true });
}
