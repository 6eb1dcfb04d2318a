import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FedmmError } from '@fedmm/core';
import { writeFileAtomic } from './atomic-file.js';

/** Where one round stands for this agent. */
export type RoundStatus = 'uploading' | 'done' | 'missed' | 'failed';

/** What the agent remembers about one (task, round, attempt). */
export interface RoundEntry {
  readonly task: string;
  readonly round: number;
  readonly attempt: number;
  readonly status: RoundStatus;
  /** The upload id used for this round; a resumed upload reuses it. */
  readonly uploadId?: string;
  /** sha256 of the update payload being uploaded. */
  readonly sha256?: string;
  /** Path of the saved update (payload and header), relative to the work dir. */
  readonly updateFile?: string;
  readonly reason?: string;
  readonly updatedAt: string;
}

interface StateDoc {
  readonly version: 1;
  readonly rounds: Record<string, RoundEntry>;
}

/** Name of the state file inside the work dir. */
export const STATE_FILE = 'agent-state.json';

/** Key of a round in the state file. */
export function roundKeyOf(task: string, round: number, attempt: number): string {
  return `${task}/${round}/${attempt}`;
}

/**
 * The agent's durable memory of the rounds it took part in: a small JSON file in the work dir,
 * replaced atomically on every change. It is written before an upload starts ('uploading', with
 * the upload id) and after it completes ('done'), so a restarted agent resumes the same upload
 * and never starts a second one for a round.
 */
export class AgentState {
  readonly file: string;
  #rounds: Map<string, RoundEntry>;

  private constructor(file: string, rounds: Map<string, RoundEntry>) {
    this.file = file;
    this.#rounds = rounds;
  }

  /** Opens (or starts) the state file in `workDir`. */
  static open(workDir: string): AgentState {
    const file = join(workDir, STATE_FILE);
    if (!existsSync(file)) return new AgentState(file, new Map());
    let doc: StateDoc;
    try {
      doc = JSON.parse(readFileSync(file, 'utf8')) as StateDoc;
    } catch (e) {
      throw new FedmmError('DATA_LOSS', `the agent state file ${file} is not valid JSON (${(e as Error).message}); restore it from a backup — deleting it lets the agent upload again for rounds it already answered`, { file });
    }
    if (doc.version !== 1 || typeof doc.rounds !== 'object' || doc.rounds === null) {
      throw new FedmmError('DATA_LOSS', `the agent state file ${file} has an unknown layout (version ${String(doc.version)}); use the agent version that wrote it`, { file });
    }
    return new AgentState(file, new Map(Object.entries(doc.rounds)));
  }

  /** The entry of a round, if the agent has touched it. */
  get(task: string, round: number, attempt: number): RoundEntry | undefined {
    return this.#rounds.get(roundKeyOf(task, round, attempt));
  }

  /** Every entry, oldest key first. */
  entries(): RoundEntry[] {
    return [...this.#rounds.values()];
  }

  /** Records a round's new status durably before returning. */
  set(entry: Omit<RoundEntry, 'updatedAt'>): RoundEntry {
    const full: RoundEntry = { ...entry, updatedAt: new Date().toISOString() };
    const next = new Map(this.#rounds);
    next.set(roundKeyOf(entry.task, entry.round, entry.attempt), full);
    const doc: StateDoc = { version: 1, rounds: Object.fromEntries(next) };
    writeFileAtomic(this.file, JSON.stringify(doc, null, 2) + '\n');
    this.#rounds = next;
    return full;
  }
}
