import { resolve } from 'node:path';
import type { ChannelCredentials } from '@grpc/grpc-js';
import { FedmmError, type Logger } from '@fedmm/core';
import type { BackendChoice } from '@fedmm/model';
import type { TlsMaterial } from '@fedmm/pki';
import type { BackoffPolicy } from './backoff.js';

/** Rechecks of a task that does not exist yet: from 1 s, doubling, then every 15 s for as long as the agent runs. */
export const DEFAULT_TASK_WAIT: BackoffPolicy = Object.freeze({ baseMs: 1000, capMs: 15_000, maxAttempts: Infinity });
import type { PersonalizationOptions } from './evaluate.js';
import type { ProgressSink } from './progress.js';

/** Options of a company agent, as the CLI or a test gives them. */
export interface AgentOptions {
  /** host:port of the gateway. */
  readonly gateway: string;
  readonly tls?: TlsMaterial;
  /** Overrides `tls` (tests against an insecure in-process gateway). */
  readonly credentials?: ChannelCredentials;
  /** The tenant the client certificate names. */
  readonly tenant: string;
  /** Training data folder (manifest.jsonl). */
  readonly dataDir: string;
  /** Held-out test folder; when set, every published version is evaluated on it. */
  readonly testDir?: string;
  /** Where state, downloaded versions, saved updates and reports live. */
  readonly workDir: string;
  readonly taskIds: readonly string[];
  readonly seed?: number;
  /** The task's class list; default labels.json of the data folder. */
  readonly classes?: readonly string[];
  /** Sign and send the tasks' terms (the operator's explicit consent, `--accept-terms`). */
  readonly acceptTerms?: boolean;
  /** Train a private adapter after each published version and report both accuracies (needs testDir). */
  readonly personalize?: PersonalizationOptions | boolean;
  /** The tfjs backend the training worker initialises (default 'wasm'; the CLI's --backend). */
  readonly backend?: BackendChoice;
  readonly backoff?: BackoffPolicy;
  /** How often a task the platform does not know yet is checked again (default {@link DEFAULT_TASK_WAIT}; its tries are unlimited). */
  readonly taskWait?: Partial<Pick<BackoffPolicy, 'baseMs' | 'capMs'>>;
  readonly chunkBytes?: number;
  readonly log?: Logger;
  readonly progress?: ProgressSink;
}

/** Options with defaults filled and checked; every later layer trusts it. */
export interface AgentConfig extends Omit<AgentOptions, 'seed' | 'personalize' | 'taskWait' | 'backend'> {
  readonly seed: number;
  readonly backend: BackendChoice;
  readonly taskWait: BackoffPolicy;
  readonly personalize?: PersonalizationOptions;
  readonly dataDir: string;
  readonly workDir: string;
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** Validates agent options and fills defaults (frozen). */
export function compileAgentConfig(o: AgentOptions): AgentConfig {
  const bad = (msg: string): FedmmError => new FedmmError('INVALID_ARGUMENT', `agent: ${msg}`);
  if (!/^[^\s:]+:\d{1,5}$/.test(o.gateway) && !/^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(o.gateway)) throw bad(`gateway ${JSON.stringify(o.gateway)} must be HOST:PORT`);
  if (!NAME.test(o.tenant)) throw bad(`tenant ${JSON.stringify(o.tenant)} must be 1-63 lower-case letters, digits, '.', '_' or '-'`);
  if (o.taskIds.length === 0) throw bad('name at least one task (--task ID)');
  for (const t of o.taskIds) if (!NAME.test(t)) throw bad(`task id ${JSON.stringify(t)} is not valid`);
  if (!o.tls && !o.credentials) throw bad('the gateway needs mTLS: pass --pki DIR or --cert, --key and --ca');
  const seed = o.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw bad(`seed must be an integer, got ${seed}`);
  const personalize = o.personalize === true ? {} : o.personalize === false || o.personalize === undefined ? undefined : o.personalize;
  if (personalize && !o.testDir) throw bad('personalization is reported on the test set; pass --test DIR');
  const taskWait: BackoffPolicy = Object.freeze({ ...DEFAULT_TASK_WAIT, ...o.taskWait, maxAttempts: Infinity });
  if (!(taskWait.baseMs > 0 && taskWait.capMs >= taskWait.baseMs)) throw bad(`the task recheck interval must be positive with cap >= base, got base ${taskWait.baseMs} ms, cap ${taskWait.capMs} ms`);
  const { personalize: _p, seed: _s, taskWait: _w, ...rest } = o;
  return Object.freeze({
    ...rest,
    seed,
    backend: o.backend ?? 'wasm',
    taskWait,
    dataDir: resolve(o.dataDir),
    workDir: resolve(o.workDir),
    ...(o.testDir ? { testDir: resolve(o.testDir) } : {}),
    ...(personalize ? { personalize } : {}),
    taskIds: Object.freeze([...new Set(o.taskIds)]),
  });
}
