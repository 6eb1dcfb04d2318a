import { FedmmError } from '@fedmm/core';
import { events as eventsPb, task as taskPb } from '@fedmm/proto';
import type { AggregatorPort, TaskSnapshot } from './types.js';

const { RoundState } = taskPb;

/** Rounds that accept updates and secure-aggregation traffic. */
export function isRoundOpen(round: taskPb.Round | undefined): boolean {
  return round !== undefined && (round.state === RoundState.ROUND_STATE_OPEN || round.state === RoundState.ROUND_STATE_COLLECTING);
}

/** The task, if `tenant` is one of its members (NOT_FOUND for an unknown task, PERMISSION_DENIED otherwise). */
export async function taskForMember(aggregator: AggregatorPort, tenant: string, taskId: string): Promise<TaskSnapshot> {
  if (!taskId) throw new FedmmError('INVALID_ARGUMENT', 'task_id is required');
  const snap = await aggregator.getTask(taskId);
  if (!snap.task.members.includes(tenant)) {
    throw new FedmmError('PERMISSION_DENIED', `tenant ${tenant} is not a member of task ${taskId}; ask the task's operator to add it`);
  }
  return snap;
}

/**
 * The round `round` of a task, if it is the current one and `tenant` was selected for it. Secure
 * aggregation also runs while the round seals (survivors send their unmasking shares then).
 */
export async function selectedRound(aggregator: AggregatorPort, tenant: string, taskId: string, round: number, purpose: 'upload' | 'secagg'): Promise<taskPb.Round> {
  const snap = await taskForMember(aggregator, tenant, taskId);
  const cur = snap.currentRound;
  const active = isRoundOpen(cur) || (purpose === 'secagg' && cur?.state === RoundState.ROUND_STATE_SEALING);
  if (!cur || cur.number !== round || !active) {
    throw new FedmmError('FAILED_PRECONDITION', `round ${round} of task ${taskId} is not open (the current round is ${cur ? `${cur.number}, ${RoundState[cur.state] ?? cur.state}` : 'none'})`);
  }
  if (!cur.selected.includes(tenant)) throw new FedmmError('PERMISSION_DENIED', `tenant ${tenant} was not selected for round ${round} of task ${taskId}`);
  return cur;
}

/** A RoundOpened event describing the task's current round, for a member that subscribes late. */
export function currentRoundOpened(snap: TaskSnapshot, tenant: string): eventsPb.RoundEvent | undefined {
  const r = snap.currentRound;
  if (!r || !isRoundOpen(r) || !r.selected.includes(tenant)) return undefined;
  const t = snap.task;
  const ms = (ts: { seconds: number; nanos: number } | undefined): number => (ts ? ts.seconds * 1000 + Math.floor(ts.nanos / 1e6) : 0);
  return {
    taskId: t.taskId,
    round: r.number,
    timeUnixMs: ms(r.openTime) || Date.now(),
    event: {
      $case: 'opened',
      value: {
        selected: [...r.selected],
        inputVersionId: r.inputVersionId,
        deadlineUnixMs: ms(r.deadline),
        clientConfig: { ...t.clientConfig },
        strategy: t.strategy,
        privacy: t.privacy,
        attempt: r.attempt,
      },
    },
  };
}
