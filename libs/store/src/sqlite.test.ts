import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from './sqlite.js';
import { runStoreContract } from './contract.js';

const file = join(mkdtempSync(join(tmpdir(), 'fedmm-sqlite-')), 'store.db');
// Reopening the file is the restart: the process's handles are gone, only the file remains.
runStoreContract('sqlite', { open: async () => new SqliteStore(file), restart: async () => undefined });
