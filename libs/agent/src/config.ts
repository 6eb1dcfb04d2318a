import { resolve } from 'node:path';
import type { ChannelCredentials } from '@grpc/grpc-js';
import { FedmmError, type Logger } from '@fedmm/core';
import type { TlsMaterial } from '@fedmm/pki';
import type { BackoffPolicy } from './backoff.js';
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
  readonly backoff?: BackoffPolicy;
  readonly chunkBytes?: number;
  readonly log?: Logger;
  readonly progress?: ProgressSink;
}

/** Options with defaults filled and checked; every later layer trusts it. */
export interface AgentConfig extends Omit<AgentOptions, 'seed' | 'personalize'> {
  readonly seed: number;
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
  const { personalize: _p, seed: _s, ...rest } = o;
  return Object.freeze({
    ...rest,
    seed,
    dataDir: resolve(o.dataDir),
    workDir: resolve(o.workDir),
    ...(o.testDir ? { testDir: resolve(o.testDir) } : {}),
    ...(personalize ? { personalize } : {}),
    taskIds: Object.freeze([...new Set(o.taskIds)]),
  });
}
