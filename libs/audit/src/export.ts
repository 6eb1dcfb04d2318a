import { readFile, rename, writeFile } from 'node:fs/promises';
import { invalidArgument } from '@fedmm/core';
import { canonicalJson } from './canonical-json.js';
import { type AuditRecord, GENESIS_HASH } from './record.js';
import type { AuditSink } from './sink.js';
import { type ChainVerification, verifyChain } from './verify-chain.js';

export const EXPORT_FORMAT = 'fedmm.audit.export';
export const EXPORT_VERSION = 1;

/** The first line of an export file. */
export interface ExportHeader {
  readonly format: typeof EXPORT_FORMAT;
  readonly version: number;
  readonly task: string;
  readonly records: number;
  readonly headHash: string;
  readonly exportedAt: string;
}

/** Writes a task's records as JSON lines after a header; refuses a chain that does not verify. */
export async function exportChain(
  records: readonly AuditRecord[],
  path: string,
  options: { readonly task: string; readonly exportedAt?: Date },
): Promise<ExportHeader> {
  const check = verifyChain(records, { task: options.task });
  if (!check.ok) throw invalidArgument(`refusing to export task ${options.task}: ${check.message}`);
  const header: ExportHeader = {
    format: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    task: options.task,
    records: check.length,
    headHash: check.headHash,
    exportedAt: (options.exportedAt ?? new Date()).toISOString(),
  };
  const lines = [canonicalJson(header), ...records.map((r) => canonicalJson(r))];
  // Write then rename, so a reader never sees half an export.
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, `${lines.join('\n')}\n`, 'utf8');
  await rename(tmp, path);
  return header;
}

/** Exports a task straight from a sink. */
export async function exportTask(sink: AuditSink, task: string, path: string): Promise<ExportHeader> {
  return exportChain(await sink.list(task), path, { task });
}

/** The verdict on an export file. */
export type ExportVerification = ChainVerification & { readonly header?: ExportHeader };

/**
 * Verifies an export file offline. The header's count and head hash catch truncation at the end;
 * compare headHash with a head obtained elsewhere (a receipt, the platform) to rule out a
 * wholesale rewrite of file and header together.
 */
export async function verifyExport(
  path: string,
  options: { readonly expectedHeadHash?: string; readonly anchors?: readonly { seq: number; hash: string }[] } = {},
): Promise<ExportVerification> {
  const lines = (await readFile(path, 'utf8')).split('\n').filter((l) => l.trim() !== '');
  const header = parseHeader(lines[0]);
  if (!header) {
    return { ok: false, firstBadSeq: 0, position: 0, problem: 'changed', message: `${path} does not start with a ${EXPORT_FORMAT} header` };
  }
  const records = lines.slice(1).map((l) => {
    try {
      return JSON.parse(l) as unknown;
    } catch {
      return undefined;
    }
  });
  const headHash = options.expectedHeadHash ?? header.headHash;
  const result = verifyChain(records, {
    task: header.task,
    expectedHead: { seq: header.records, hash: header.records === 0 ? GENESIS_HASH : headHash },
    ...(options.anchors ? { anchors: options.anchors } : {}),
  });
  return { ...result, header };
}

function parseHeader(line: string | undefined): ExportHeader | undefined {
  if (line === undefined) return undefined;
  try {
    const h = JSON.parse(line) as Partial<ExportHeader>;
    if (h.format !== EXPORT_FORMAT || h.version !== EXPORT_VERSION) return undefined;
    if (typeof h.task !== 'string' || !Number.isInteger(h.records) || typeof h.headHash !== 'string') return undefined;
    return h as ExportHeader;
  } catch {
    return undefined;
  }
}
