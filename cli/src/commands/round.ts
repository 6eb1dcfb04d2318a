import { parseArgs } from 'node:util';
import type { task as tpb } from '@fedmm/proto';
import { UsageError, type Command } from '../command.js';
import { DEFAULT_AGGREGATOR, intFlag, millis, roundStateName, table, when, withAggregator } from './operator.js';

const usage = `fedmm round <start|show|list|cancel> TASK [N] [options]

  fedmm round start TASK              opens the task's next round (later rounds open by themselves)
  fedmm round show TASK N             one round: state, selected, received, versions, times
  fedmm round list TASK               every round of the task
  fedmm round cancel TASK N [--reason TEXT]

--addr is the aggregator: FEDMM_AGGREGATOR_ADDR or ${DEFAULT_AGGREGATOR} by default.`;

export const roundCommand: Command = {
  name: 'round',
  summary: 'start, show, list and cancel the rounds of a task',
  usage,
  run: (argv) => runRound(argv, (t) => process.stdout.write(t)),
};

function seconds(r: tpb.Round): string {
  const open = millis(r.openTime);
  const close = millis(r.closeTime);
  return open > 0 && close > open ? `${((close - open) / 1000).toFixed(1)}` : '-';
}

/** The readable description of one round. */
export function describeRound(r: tpb.Round): string {
  const rows: [string, string][] = [
    ['round', `${r.number} of task ${r.taskId} (attempt ${r.attempt})`],
    ['state', roundStateName(r.state) + (r.failureReason ? `: ${r.failureReason}` : '')],
    ['selected', r.selected.join(', ') || '-'],
    ['received', `${r.received.join(', ') || '-'} (${r.received.length} of ${r.selected.length})`],
    ['dropped', r.dropped.join(', ') || '-'],
    ['input', r.inputVersionId || '-'],
    ['output', r.outputVersionId || '-'],
    ['opened', when(r.openTime)],
    ['deadline', when(r.deadline)],
    ['closed', when(r.closeTime)],
  ];
  return rows.map(([k, v]) => `${k.padEnd(8)}  ${v}`).join('\n') + '\n';
}

/** `fedmm round` with its output sent to `write`. */
export async function runRound(argv: string[], write: (text: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { addr: { type: 'string', default: DEFAULT_AGGREGATOR }, reason: { type: 'string', default: 'cancelled by the operator' } },
  });
  const [action, taskId, n, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
  if (action && !taskId) throw new UsageError(`name the task: fedmm round ${action} TASK`);
  const number = (): number => {
    if (n === undefined) throw new UsageError(`name the round number: fedmm round ${action} ${taskId} N`);
    return intFlag('round number', n, 1);
  };
  const noNumber = (): void => {
    if (n !== undefined) throw new UsageError(`round ${action} takes only the task, not a round number`);
  };
  const addr = values.addr;
  switch (action) {
    case 'start': {
      noNumber();
      const r = await withAggregator(addr, `starting the next round of ${taskId}`, async (c) => (await c.startRound({ taskId: taskId! }, { deadlineMs: 30_000 })).round!);
      write(`opened round ${r.number} of ${r.taskId}\n\n${describeRound(r)}`);
      return 0;
    }
    case 'show': {
      const num = number();
      const r = await withAggregator(addr, `reading round ${num} of ${taskId}`, async (c) => (await c.getRound({ taskId: taskId!, number: num }, { deadlineMs: 15_000 })).round!);
      write(describeRound(r));
      return 0;
    }
    case 'list': {
      noNumber();
      const rounds = await withAggregator(addr, `listing the rounds of ${taskId}`, async (c) => (await c.listRounds({ taskId: taskId! }, { deadlineMs: 15_000 })).rounds);
      if (rounds.length === 0) {
        write(`task ${taskId} has no rounds yet; open one with fedmm round start ${taskId}\n`);
        return 0;
      }
      write(table(['ROUND', 'ATTEMPT', 'STATE', 'RECEIVED', 'SECONDS', 'OUTPUT VERSION', 'OPENED'], rounds.map((r) => [
        String(r.number), String(r.attempt), roundStateName(r.state), `${r.received.length}/${r.selected.length}`, seconds(r), r.outputVersionId || '-', when(r.openTime),
      ])));
      return 0;
    }
    case 'cancel': {
      const num = number();
      const r = await withAggregator(addr, `cancelling round ${num} of ${taskId}`, async (c) => (await c.cancelRound({ taskId: taskId!, number: num, reason: values.reason }, { deadlineMs: 30_000 })).round!);
      write(`round ${r.number} of ${r.taskId} is ${roundStateName(r.state)}${r.failureReason ? ` (${r.failureReason})` : ''}\n`);
      return 0;
    }
    default:
      throw new UsageError(action ? `unknown round action ${JSON.stringify(action)}: use start, show, list or cancel` : 'name an action: start, show, list or cancel');
  }
}
