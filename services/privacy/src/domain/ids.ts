import { invalidArgument, notFound } from '@fedmm/core';
import { storeKey } from '@fedmm/store';
import type { Scope } from './types.js';

const ID = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;

/** Throws INVALID_ARGUMENT unless id is a valid tenant or task id. */
export function requireId(what: 'tenant' | 'task', id: string): void {
  if (!ID.test(id)) {
    throw invalidArgument(`${what} id ${JSON.stringify(id)} is not valid: use 1-128 letters, digits, '.', '_', '@' or '-', starting with a letter or digit`);
  }
}

/** Throws INVALID_ARGUMENT unless scope is "tenant" or "task". */
export function parseScope(scope: string): Scope {
  if (scope === 'tenant' || scope === 'task') return scope;
  throw invalidArgument(`budget scope must be "tenant" or "task", got ${JSON.stringify(scope)}`);
}

/** The reservation id of (task, round, attempt): the same round attempt always gets the same id. */
export function reservationId(taskId: string, round: number, attempt: number): string {
  return `${taskId}/${round}/${attempt}`;
}

/** Parses a reservation id; unknown shapes are NOT_FOUND, as no such reservation can exist. */
export function parseReservationId(id: string): { taskId: string; round: number; attempt: number } {
  const parts = id.split('/');
  const [taskId, round, attempt] = parts;
  if (parts.length !== 3 || !taskId || !ID.test(taskId) || !/^\d+$/.test(round ?? '') || !/^\d+$/.test(attempt ?? '')) {
    throw notFound(`reservation ${JSON.stringify(id)} does not exist: reservation ids look like <task>/<round>/<attempt>; use the id Reserve returned`);
  }
  return { taskId, round: Number(round), attempt: Number(attempt) };
}

// Every privacy key carries the hash tag {privacy}: one budget check writes a task account, several
// tenant accounts and a reservation atomically, which Redis Cluster allows only within one slot.
const TAG = '{privacy}';

export const accountKey = (scope: Scope, id: string): string => storeKey(TAG, 'account', scope, id);
export const accountPrefix = (scope: Scope): string => storeKey(TAG, 'account', scope, '');
export const reservationKey = (taskId: string, round: number, attempt: number): string => storeKey(TAG, 'reservation', taskId, round, attempt);
export const reservationPrefix = (taskId?: string): string => (taskId ? storeKey(TAG, 'reservation', taskId, '') : storeKey(TAG, 'reservation', ''));
