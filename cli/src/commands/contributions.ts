import { parseArgs } from 'node:util';
import { ValuationClient } from '@fedmm/valuation-service';
import { UsageError, type Command } from '../command.js';
import { operatorCredentials, valuationAddress } from './operator-client.js';

export const contributionsCommand: Command = {
  name: 'contributions',
  summary: "print a task's contribution table (values, reward shares, access tiers)",
  usage: `fedmm contributions TASK [--addr HOST:PORT] [--json]

Prints, per company: the value of its update in the last scored round, its cumulative value,
its reward share and its access tier (with the version delay in rounds). --addr defaults to
FEDMM_VALUATION_ADDR or 127.0.0.1:7004; FEDMM_TLS_CA/CERT/KEY select mTLS.`,
  run: (argv) => runContributions(argv, (text) => process.stdout.write(text)),
};

/** `fedmm contributions`, writing the table through `write`. */
export async function runContributions(argv: string[], write: (text: string) => void): Promise<number> {
  const { positionals, values } = parseArgs({ args: argv, allowPositionals: true, options: { addr: { type: 'string' }, json: { type: 'boolean' } } });
  const task = positionals[0];
  if (!task || positionals.length > 1) throw new UsageError('name one task');
  const client = new ValuationClient(valuationAddress(values.addr), operatorCredentials());
  try {
    const res = await client.contributions(task);
    if (values.json) {
      write(`${JSON.stringify(res, null, 2)}\n`);
      return 0;
    }
    const last = res.rounds[res.rounds.length - 1];
    write(
      last
        ? `task ${task}: ${res.rounds.length} round(s) scored; last: round ${last.round}, ${last.method} over ${last.utility}${last.secure ? ' (secure aggregation: values per group)' : ''}\n`
        : `task ${task}: no round scored yet\n`,
    );
    const rows = res.contributions.map((c) => [c.tenant, fmt(c.roundValue), fmt(c.cumulativeValue), `${(c.rewardShare * 100).toFixed(1)}%`, c.tier ? `${c.tier} (delay ${c.versionDelayRounds})` : '-']);
    write(table(['tenant', 'last round', 'cumulative', 'reward share', 'tier'], rows));
    return 0;
  } finally {
    client.close();
  }
}

function fmt(x: number): string {
  return Math.abs(x) < 5e-7 ? '0' : x.toFixed(6);
}

/** Left-aligned text columns, numbers right-aligned. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i > 0 && i < 4 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}
