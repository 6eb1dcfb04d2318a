import { invalidArgument } from '@fedmm/core';

/** A JSON value as audit payloads may hold it. */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/**
 * Canonical JSON (RFC 8785 JCS): keys sorted by UTF-16 code units, no whitespace, numbers as
 * ECMAScript prints them. Object properties whose value is undefined are left out (as
 * JSON.stringify does); non-finite numbers, lone surrogates and non-plain objects are refused, so
 * that one value has exactly one serialization and therefore one hash.
 */
export function canonicalJson(value: unknown): string {
  return serialize(value, '$');
}

function serialize(value: unknown, path: string): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw invalidArgument(`${path} is ${value}; canonical JSON has no NaN or Infinity, record it as a string or null`);
      return JSON.stringify(value);
    case 'string':
      if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(value)) {
        throw invalidArgument(`${path} holds a lone UTF-16 surrogate; only well-formed Unicode strings can be hashed canonically`);
      }
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) {
        return `[${value.map((v, i) => {
          if (v === undefined) throw invalidArgument(`${path}[${i}] is undefined; arrays in audit records hold JSON values only`);
          return serialize(v, `${path}[${i}]`);
        }).join(',')}]`;
      }
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) {
        throw invalidArgument(`${path} is a ${(value).constructor?.name ?? 'non-plain object'}; convert it to plain JSON (ISO strings for dates, base64 for bytes)`);
      }
      const entries = Object.keys(value)
        .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
        .sort()
        .map((k) => `${serialize(k, path)}:${serialize((value as Record<string, unknown>)[k], `${path}.${k}`)}`);
      return `{${entries.join(',')}}`;
    }
    default:
      throw invalidArgument(`${path} is of type ${typeof value}; audit records hold JSON values only`);
  }
}
