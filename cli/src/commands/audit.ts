import { parseArgs } from 'node:util';
import { exportChain, verifyChain, verifyExport, type AuditRecord, type ChainVerification } from '@fedmm/audit';
import { audit as pb } from '@fedmm/proto';
import { createRpcClient } from '@fedmm/service-kit';
import { UsageError, type Command } from '../command.js';
import { operatorCredentials, valuationAddress } from './operator-client.js';

export const auditCommand: Command = {
  name: 'audit',
  summary: "verify or export a task's tamper-evident audit trail",
  usage: `fedmm audit verify TASK [--addr HOST:PORT | --file EXPORT.jsonl] [--head HASH]
fedmm audit export TASK --out FILE [--addr HOST:PORT]

verify: recomputes the hash chain here, trusting nothing but the records. With --file it checks
an export offline (no platform needed); --head compares the chain's head with a hash obtained
elsewhere (a receipt), which also catches a wholesale rewrite. Exit status 0: intact; 1: tampered,
with the first bad record and the kind of tampering (changed, removed, reordered, inserted).
export: writes the task's records as JSON lines after a header (docs/AUDIT.md).
The audit trail is served by the valuation service: --addr defaults to FEDMM_VALUATION_ADDR or
127.0.0.1:7004.`,
  run: (argv) => runAudit(argv, (text) => process.stdout.write(text)),
};

/** `fedmm audit`, writing its report through `write`. */
export async function runAudit(argv: string[], write: (text: string) => void): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { addr: { type: 'string' }, file: { type: 'string' }, out: { type: 'string' }, head: { type: 'string' } },
  });
  const [action, task] = positionals;
  if (!task || positionals.length > 2) throw new UsageError('usage: fedmm audit verify|export TASK');
  if (action === 'verify') {
    if (values.file && values.addr) throw new UsageError('give either --file or --addr, not both');
    let result: ChainVerification;
    if (values.file) {
      const v = await verifyExport(values.file, values.head ? { expectedHeadHash: values.head } : {});
      if (v.header && v.header.task !== task) {
        write(`${values.file} is an export of task ${v.header.task}, not ${task}\n`);
        return 1;
      }
      result = v;
    } else {
      const records = await fetchRecords(task, values.addr);
      result = verifyChain(records, { task, ...(values.head ? { expectedHead: { seq: records.length, hash: values.head } } : {}) });
    }
    return report(task, result, write);
  }
  if (action === 'export') {
    if (!values.out) throw new UsageError('export needs --out FILE');
    const records = await fetchRecords(task, values.addr);
    const header = await exportChain(records, values.out, { task });
    write(`exported ${header.records} records of task ${task} to ${values.out}; head ${header.headHash}\n`);
    return 0;
  }
  throw new UsageError(`unknown action ${JSON.stringify(action)}; use verify or export`);
}

function report(task: string, r: ChainVerification, write: (text: string) => void): number {
  if (r.ok) {
    write(`task ${task}: ${r.length} records, chain intact; head ${r.headHash}\n`);
    return 0;
  }
  write(`task ${task}: TAMPERED: ${r.problem} at seq ${r.firstBadSeq} (position ${r.position}): ${r.message}\n`);
  return 1;
}

/** Every record of the task from the platform, rebuilt exactly as hashed. */
async function fetchRecords(task: string, addr: string | undefined): Promise<AuditRecord[]> {
  const client = createRpcClient(pb.AuditServiceService, valuationAddress(addr), operatorCredentials());
  try {
    const out: AuditRecord[] = [];
    for (let after = 0; ; ) {
      const page = (await client.listRecords({ taskId: task, afterSeq: after, limit: 1000 }, { deadlineMs: 60_000 })).records;
      for (const r of page) out.push(fromPb(r));
      if (page.length < 1000) return out;
      after = page[page.length - 1]!.seq;
    }
  } finally {
    client.close();
  }
}

function fromPb(r: pb.AuditRecord): AuditRecord {
  return {
    seq: r.seq,
    task: r.taskId,
    // An unknown kind is kept as sent: verification, not parsing, decides whether a record is genuine.
    kind: r.kind as AuditRecord['kind'],
    at: r.at || new Date(r.timeUnixMs).toISOString(),
    actor: r.actor,
    payload: JSON.parse(r.payloadJson || '{}') as AuditRecord['payload'],
    prevHash: r.prevHash,
    hash: r.hash,
  };
}
