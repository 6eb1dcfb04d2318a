import { FedmmError } from './errors.js';

/** Reads one environment variable into a typed value, or explains what is allowed. */
export interface EnvReader {
  string(name: string, fallback?: string): string;
  optionalString(name: string): string | undefined;
  int(name: string, fallback: number, bounds?: { min?: number; max?: number }): number;
  number(name: string, fallback: number, bounds?: { min?: number; max?: number }): number;
  bool(name: string, fallback: boolean): boolean;
  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T;
  list(name: string, fallback: readonly string[]): string[];
}

/** Thrown when the environment does not describe a valid configuration; names every bad variable. */
export class ConfigError extends FedmmError {
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super('INVALID_ARGUMENT', `invalid configuration:\n  - ${problems.join('\n  - ')}`, { problems });
    this.name = 'ConfigError';
    this.problems = Object.freeze([...problems]);
  }
}

/**
 * Compiles a configuration from an environment: `build` reads variables through the reader, which
 * collects every problem instead of stopping at the first; the result is deep-frozen.
 */
export function compileConfig<T extends object>(
  env: NodeJS.ProcessEnv,
  build: (read: EnvReader) => T,
): Readonly<T> {
  const problems: string[] = [];
  const raw = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };
  const checkBounds = (name: string, v: number, bounds?: { min?: number; max?: number }): void => {
    if (bounds?.min !== undefined && v < bounds.min) problems.push(`${name}=${v} is below the minimum ${bounds.min}`);
    if (bounds?.max !== undefined && v > bounds.max) problems.push(`${name}=${v} is above the maximum ${bounds.max}`);
  };
  const reader: EnvReader = {
    string(name, fallback) {
      const v = raw(name);
      if (v !== undefined) return v;
      if (fallback === undefined) {
        problems.push(`${name} is required but not set`);
        return '';
      }
      return fallback;
    },
    optionalString(name) {
      return raw(name);
    },
    int(name, fallback, bounds) {
      const v = raw(name);
      if (v === undefined) return fallback;
      if (!/^-?\d+$/.test(v)) {
        problems.push(`${name}=${JSON.stringify(v)} is not an integer`);
        return fallback;
      }
      const n = Number.parseInt(v, 10);
      checkBounds(name, n, bounds);
      return n;
    },
    number(name, fallback, bounds) {
      const v = raw(name);
      if (v === undefined) return fallback;
      const n = Number(v);
      if (!Number.isFinite(n)) {
        problems.push(`${name}=${JSON.stringify(v)} is not a finite number`);
        return fallback;
      }
      checkBounds(name, n, bounds);
      return n;
    },
    bool(name, fallback) {
      const v = raw(name);
      if (v === undefined) return fallback;
      const l = v.toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(l)) return true;
      if (['0', 'false', 'no', 'off'].includes(l)) return false;
      problems.push(`${name}=${JSON.stringify(v)} is not a boolean (use true or false)`);
      return fallback;
    },
    oneOf(name, allowed, fallback) {
      const v = raw(name);
      if (v === undefined) return fallback;
      if (!(allowed as readonly string[]).includes(v)) {
        problems.push(`${name}=${JSON.stringify(v)} is not allowed (use one of: ${allowed.join(', ')})`);
        return fallback;
      }
      return v as (typeof allowed)[number];
    },
    list(name, fallback) {
      const v = raw(name);
      if (v === undefined) return [...fallback];
      return v.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    },
  };
  const result = build(reader);
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze(result);
}

/** Freezes an object graph so later layers can trust a compiled configuration. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
  }
  return value;
}

/** Validates a host:port address. */
export function isHostPort(v: string): boolean {
  return /^[A-Za-z0-9_.\-[\]:]+:\d{1,5}$/.test(v);
}
