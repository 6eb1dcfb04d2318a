import { invalidArgument } from '@fedmm/core';

// How the platform carries the protocol's messages: each message is JSON with every binary field
// written as { "$b": base64 } (Uint8Array) or { "$w": base64 } (Uint32Array, little-endian), and
// travels through the gateway's relay store, one entry per (task, round, stage, recipient, sender).
// The coordinator is one more party of the relay, named SECAGG_SERVER_PARTY.

/** The relay party that stands for the server (the coordinator); never a tenant id (tenants have no '@'). */
export const SECAGG_SERVER_PARTY = '@aggregator';

/** Relay stage numbers of the four protocol stages. */
export const SECAGG_STAGES = Object.freeze({ setup: 0, 'share-keys': 1, 'collect-masked': 2, unmask: 3 } as const);

/** The relay stage number of a protocol stage name. */
export function relayStageOf(stage: keyof typeof SECAGG_STAGES): number {
  return SECAGG_STAGES[stage];
}

/** Serialises a protocol message (any of messages.ts) for the relay. */
export function encodeSecAggMessage(msg: object): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(msg, (_k, v: unknown) => {
    if (v instanceof Uint32Array) return { $w: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
    if (v instanceof Uint8Array) return { $b: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
    return v;
  }));
}

/** Parses a relayed message and checks its stage; the protocol classes validate the rest. */
export function decodeSecAggMessage<T extends { stage: string }>(bytes: Uint8Array, stage: T['stage']): T {
  let msg: unknown;
  try {
    msg = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes), (_k, v: unknown) => {
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
        const o = v as Record<string, unknown>;
        const keys = Object.keys(o);
        if (keys.length === 1 && typeof o['$b'] === 'string') return new Uint8Array(Buffer.from(o['$b'], 'base64'));
        if (keys.length === 1 && typeof o['$w'] === 'string') {
          const b = Buffer.from(o['$w'], 'base64');
          if (b.length % 4 !== 0) throw invalidArgument('a word array in a secure-aggregation message is not a whole number of words');
          const words = new Uint32Array(b.length / 4);
          new Uint8Array(words.buffer).set(b);
          return words;
        }
      }
      return v;
    });
  } catch (e) {
    throw invalidArgument(`a secure-aggregation message is not valid JSON: ${(e as Error).message}`);
  }
  if (msg === null || typeof msg !== 'object' || (msg as { stage?: unknown }).stage !== stage) {
    throw invalidArgument(`expected a secure-aggregation '${stage}' message`);
  }
  return msg as T;
}

/** A relay entry as the store holds it (the gateway's relay and the coordinator share this layout). */
export interface RelayEntry {
  readonly from: string;
  readonly to: string;
  readonly stage: number;
  /** base64 of the encoded message. */
  readonly payload: string;
}

const part = (s: string | number): string => encodeURIComponent(String(s));

/** Store key parts (under the `fedmm` prefix) of one relayed message. */
export function relayKeyParts(taskId: string, round: number, stage: number, recipient: string, sender: string): string[] {
  return ['gateway', 'secagg', part(taskId), String(round), String(stage), part(recipient), part(sender)];
}

/** Store key parts of every message of a stage addressed to `recipient` (end with '' for a prefix). */
export function relayInboxParts(taskId: string, round: number, stage: number, recipient: string): string[] {
  return ['gateway', 'secagg', part(taskId), String(round), String(stage), part(recipient), ''];
}

/** Store key parts of every relayed message of a round. */
export function relayRoundParts(taskId: string, round: number): string[] {
  return ['gateway', 'secagg', part(taskId), String(round), ''];
}
