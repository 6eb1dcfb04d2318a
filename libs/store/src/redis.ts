import { Redis, type RedisOptions } from 'ioredis';
import { FedmmError } from '@fedmm/core';
import type { Check, Entry, Store, Write } from './port.js';

// Each key is a hash {v: value, ver: version}; versions come from one counter, so a deleted and
// re-created key never reuses a version. Multi-key scripts need every key in one hash slot on
// Redis Cluster: fedmm keeps each atomic batch inside one {tag}.
const VERSION_KEY = 'fedmm:__version';

const LUA_PUT = `
local ver = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'ver', ver)
return ver`;

const LUA_CAS = `
local cur = tonumber(redis.call('HGET', KEYS[1], 'ver') or '0')
if cur ~= tonumber(ARGV[1]) then return false end
local ver = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'ver', ver)
return ver`;

// KEYS: version key, then check keys, then write keys. ARGV: ncheck, nwrite, check versions..., then (isDelete, value) pairs.
const LUA_ATOMIC = `
local nc = tonumber(ARGV[1])
local nw = tonumber(ARGV[2])
for i = 1, nc do
  local cur = tonumber(redis.call('HGET', KEYS[1 + i], 'ver') or '0')
  if cur ~= tonumber(ARGV[2 + i]) then return 0 end
end
for j = 1, nw do
  local key = KEYS[1 + nc + j]
  local del = ARGV[2 + nc + (j - 1) * 2 + 1]
  if del == '1' then
    redis.call('DEL', key)
  else
    local ver = redis.call('INCR', KEYS[1])
    redis.call('HSET', key, 'v', ARGV[2 + nc + (j - 1) * 2 + 2], 'ver', ver)
  end
end
return 1`;

const LUA_INCR = `
local cur = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
local n = cur + tonumber(ARGV[1])
local ver = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'v', tostring(n), 'ver', ver)
return tostring(n)`;

function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => '\\' + c);
}

/** The store on Redis (ioredis). Durability comes from the server: AOF with appendfsync always. */
export class RedisStore implements Store {
  readonly kind = 'redis' as const;
  private readonly redis: Redis;

  constructor(url: string, options: RedisOptions = {}) {
    this.redis = new Redis(url, { maxRetriesPerRequest: 20, enableOfflineQueue: true, lazyConnect: false, ...options } as never);
    this.redis.on('error', () => undefined);
    this.redis.defineCommand('fedmmPut', { numberOfKeys: 2, lua: LUA_PUT });
    this.redis.defineCommand('fedmmCas', { numberOfKeys: 2, lua: LUA_CAS });
    this.redis.defineCommand('fedmmIncr', { numberOfKeys: 2, lua: LUA_INCR });
  }

  private call<T>(name: string, ...args: (string | number)[]): Promise<T> {
    return (this.redis as unknown as Record<string, (...a: (string | number)[]) => Promise<T>>)[name]!(...args);
  }

  async get(key: string): Promise<Entry | undefined> {
    const [v, ver] = await this.redis.hmget(key, 'v', 'ver');
    if (v === null || v === undefined || ver === null || ver === undefined) return undefined;
    return { key, value: v, version: Number(ver) };
  }

  async put(key: string, value: string): Promise<number> {
    return Number(await this.call<number>('fedmmPut', key, VERSION_KEY, value));
  }

  async delete(key: string): Promise<boolean> {
    return (await this.redis.del(key)) > 0;
  }

  async compareAndSet(key: string, expectedVersion: number, value: string): Promise<number | undefined> {
    const r = await this.call<number | null>('fedmmCas', key, VERSION_KEY, String(expectedVersion), value);
    return r === null ? undefined : Number(r);
  }

  async atomic(checks: Check[], writes: Write[]): Promise<boolean> {
    const keys = [VERSION_KEY, ...checks.map((c) => c.key), ...writes.map((w) => w.key)];
    const args: string[] = [String(checks.length), String(writes.length), ...checks.map((c) => String(c.version))];
    for (const w of writes) args.push(w.value === null ? '1' : '0', w.value ?? '');
    const r = await this.redis.eval(LUA_ATOMIC, keys.length, ...keys, ...args);
    return Number(r) === 1;
  }

  async increment(key: string, delta: number): Promise<number> {
    if (!Number.isFinite(delta)) throw new FedmmError('INVALID_ARGUMENT', `increment of ${key} by ${delta}: the delta must be a finite number`);
    return Number(await this.call<string>('fedmmIncr', key, VERSION_KEY, String(delta)));
  }

  async list(prefix: string, limit = 100_000): Promise<Entry[]> {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await this.redis.scan(cursor, 'MATCH', globEscape(prefix) + '*', 'COUNT', 1000);
      cursor = next;
      for (const k of batch) if (k !== VERSION_KEY) keys.push(k);
    } while (cursor !== '0');
    keys.sort();
    const selected = keys.slice(0, limit);
    if (selected.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const k of selected) pipe.hmget(k, 'v', 'ver');
    const res = (await pipe.exec()) ?? [];
    const out: Entry[] = [];
    selected.forEach((key, i) => {
      const [err, vals] = res[i] ?? [null, null];
      if (err) throw err;
      const [v, ver] = (vals as (string | null)[] | null) ?? [null, null];
      if (v !== null && v !== undefined && ver !== null && ver !== undefined) out.push({ key, value: v, version: Number(ver) });
    });
    return out;
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
