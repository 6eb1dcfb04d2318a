import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dataLoss, invalidArgument } from '@fedmm/core';
import { canonicalJson } from './canonical-json.js';
import type { AuditRecord } from './record.js';
import { type AuditSink, checkExtends } from './sink.js';
import { isRecordShape } from './verify-chain.js';

const TASK_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** One JSON-lines file per task under a directory; each append is fsynced before it resolves. */
export class JsonlFileAuditSink implements AuditSink {
  readonly #dir: string;
  readonly #cache = new Map<string, AuditRecord[]>();

  constructor(directory: string) {
    this.#dir = directory;
  }

  /** The file holding a task's records. */
  pathOf(task: string): string {
    if (!TASK_ID.test(task)) {
      throw invalidArgument(`task id ${JSON.stringify(task)} cannot name an audit file; use letters, digits, '.', '_' and '-'`);
    }
    return join(this.#dir, `${task}.jsonl`);
  }

  async append(record: AuditRecord): Promise<void> {
    const chain = await this.#load(record.task);
    if (!checkExtends(chain, record)) return;
    await mkdir(this.#dir, { recursive: true });
    const file = await open(this.pathOf(record.task), 'a');
    try {
      await file.write(`${canonicalJson(record)}\n`);
      await file.datasync();
    } finally {
      await file.close();
    }
    chain.push(record);
  }

  async list(task: string): Promise<AuditRecord[]> {
    return [...(await this.#load(task))];
  }

  async #load(task: string): Promise<AuditRecord[]> {
    const cached = this.#cache.get(task);
    if (cached) return cached;
    let text = '';
    try {
      text = await readFile(this.pathOf(task), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const records = parseJsonLines(text, this.pathOf(task));
    this.#cache.set(task, records);
    return records;
  }
}

function parseJsonLines(text: string, path: string): AuditRecord[] {
  const out: AuditRecord[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      throw dataLoss(`line ${i + 1} of ${path} is not JSON; the audit file is damaged, run "fedmm audit verify" on it`);
    }
    if (!isRecordShape(parsed)) throw dataLoss(`line ${i + 1} of ${path} is not an audit record; run "fedmm audit verify" on it`);
    out.push(parsed);
  });
  return out;
}
