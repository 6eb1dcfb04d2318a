import { invalidArgument } from '@fedmm/core';

/** Checks a list of client ids is made of unique non-empty strings and returns it sorted. */
export function checkIdList(ids: readonly string[], what: string): readonly string[] {
  if (!Array.isArray(ids)) throw invalidArgument(`${what} must be a list of client ids`);
  if (ids.some((id) => typeof id !== 'string' || id.length === 0)) {
    throw invalidArgument(`${what} must contain only non-empty client ids`);
  }
  if (new Set(ids).size !== ids.length) throw invalidArgument(`${what} contains a client id twice`);
  return Object.freeze([...ids].sort());
}

/** Whether two id lists hold the same ids in the same order. */
export function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
