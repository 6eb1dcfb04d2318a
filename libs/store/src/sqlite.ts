import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Check, Entry, Store, Write } from './port.js';

/**
 * The store on a local SQLite file: WAL journal with synchronous=FULL, so an acknowledged write
 * survives a crash of the process or the machine. Versions come from one counter for the whole
 * file, so a deleted and re-created key never reuses a version (no ABA under compare-and-set).
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(readonly path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, version INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
      INSERT OR IGNORE INTO meta (name, n) VALUES ('version', 0);
    `);
    this.stmts = {
      get: this.db.prepare<[string], { key: string; value: string; version: number }>('SELECT key, value, version FROM kv WHERE key = ?'),
      nextVersion: this.db.prepare<[], { n: number }>("UPDATE meta SET n = n + 1 WHERE name = 'version' RETURNING n"),
      upsert: this.db.prepare<[string, string, number]>('INSERT INTO kv (key, value, version) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, version = excluded.version'),
      del: this.db.prepare<[string]>('DELETE FROM kv WHERE key = ?'),
      list: this.db.prepare<[string, string, number], { key: string; value: string; version: number }>('SELECT key, value, version FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ?'),
    };
  }

  private version(): number {
    return this.stmts.nextVersion.get()!.n;
  }

  private write(key: string, value: string): number {
    const v = this.version();
    this.stmts.upsert.run(key, value, v);
    return v;
  }

  async get(key: string): Promise<Entry | undefined> {
    return this.stmts.get.get(key) ?? undefined;
  }

  async put(key: string, value: string): Promise<number> {
    return this.db.transaction(() => this.write(key, value)).immediate();
  }

  async delete(key: string): Promise<boolean> {
    return this.stmts.del.run(key).changes > 0;
  }

  async compareAndSet(key: string, expectedVersion: number, value: string): Promise<number | undefined> {
    return this.db.transaction(() => {
      const cur = this.stmts.get.get(key)?.version ?? 0;
      if (cur !== expectedVersion) return undefined;
      return this.write(key, value);
    }).immediate();
  }

  async atomic(checks: Check[], writes: Write[]): Promise<boolean> {
    return this.db.transaction(() => {
      for (const c of checks) if ((this.stmts.get.get(c.key)?.version ?? 0) !== c.version) return false;
      for (const w of writes) {
        if (w.value === null) this.stmts.del.run(w.key);
        else this.write(w.key, w.value);
      }
      return true;
    }).immediate();
  }

  async increment(key: string, delta: number): Promise<number> {
    return this.db.transaction(() => {
      const cur = this.stmts.get.get(key);
      const n = (cur ? Number(cur.value) : 0) + delta;
      this.write(key, String(n));
      return n;
    }).immediate();
  }

  async list(prefix: string, limit = 100_000): Promise<Entry[]> {
    return this.stmts.list.all(prefix, prefix + '\uffff', limit);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
