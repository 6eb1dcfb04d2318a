import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** What the demo learns about a company from its agent's log lines. */
export interface AgentFigures {
  /** Update bytes the agent sent (sum of 'update uploaded' bytes). */
  bytesSent: number;
  /** Model bytes the agent received (sum of 'downloaded model version' bytes). */
  bytesReceived: number;
  /** Seconds of local training (sum of 'trained' seconds). */
  trainingSeconds: number;
  uploads: number;
  /** Warnings and errors the agent logged, for the summary when something went wrong. */
  problems: string[];
}

/** One company agent running as its own process. */
export interface AgentProcess {
  readonly tenant: string;
  readonly child: ChildProcess;
  readonly logFile: string;
  readonly figures: AgentFigures;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  stop(graceMs?: number): Promise<number | string>;
}

/** How to start one agent. */
export interface AgentSpec {
  readonly tenant: string;
  readonly gateway: string;
  readonly pkiDir: string;
  readonly trainDir: string;
  readonly testDir: string;
  readonly taskId: string;
  readonly workDir: string;
  readonly seed: number;
  /** argv before `client run ...`, default this node and bin/fedmm.js. */
  readonly command: readonly string[];
  readonly logDir: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Receives each line worth showing (progress bars and the agent's notable events), unprefixed. */
  readonly onLine: (tenant: string, line: string) => void;
}

const SHOWN = new Set(['trained', 'update uploaded', 'evaluated on the local test set', 'agent started']);

function fold(figures: AgentFigures, rec: Record<string, unknown>): void {
  const num = (k: string): number => (typeof rec[k] === 'number' ? (rec[k]) : 0);
  switch (rec['msg']) {
    case 'update uploaded':
      figures.bytesSent += num('bytes');
      figures.uploads += 1;
      break;
    case 'downloaded model version':
      figures.bytesReceived += num('bytes');
      break;
    case 'trained':
      figures.trainingSeconds += num('seconds');
      break;
    default:
      if (rec['level'] === 'warn' || rec['level'] === 'error') figures.problems.push(`${String(rec['msg'])}${rec['err'] ? `: ${JSON.stringify(rec['err'])}` : ''}`);
  }
}

function describe(rec: Record<string, unknown>): string | undefined {
  const msg = String(rec['msg']);
  if (rec['level'] === 'warn' || rec['level'] === 'error') {
    const err = rec['err'] as { message?: string } | undefined;
    return `${rec['level']}: ${msg}${err?.message ? ` (${err.message})` : ''}`;
  }
  if (!SHOWN.has(msg)) return undefined;
  if (msg === 'trained') return `trained round ${String(rec['round'])}: ${String(rec['steps'])} steps in ${Number(rec['seconds']).toFixed(1)} s, update norm ${Number(rec['updateNorm']).toFixed(3)}`;
  if (msg === 'update uploaded') return `uploaded round ${String(rec['round'])}: ${String(rec['bytes'])} bytes`;
  if (msg === 'evaluated on the local test set') return `version ${String(rec['version'])}: test accuracy ${(100 * Number(rec['shared'])).toFixed(1)} %`;
  return msg;
}

/** Starts one agent process; its stdout and stderr go to `<logDir>/<tenant>.log`. */
export function startAgent(spec: AgentSpec): AgentProcess {
  mkdirSync(spec.logDir, { recursive: true });
  mkdirSync(spec.workDir, { recursive: true });
  const logFile = join(spec.logDir, `${spec.tenant}.log`);
  const log: WriteStream = createWriteStream(logFile);
  const [cmd, ...pre] = spec.command;
  const args = [...pre, 'client', 'run', '--gateway', spec.gateway, '--tenant', spec.tenant, '--pki', spec.pkiDir, '--data', spec.trainDir, '--test', spec.testDir, '--task', spec.taskId, '--work', spec.workDir, '--seed', String(spec.seed), '--accept-terms'];
  const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...(spec.env ?? {}) } });
  const figures: AgentFigures = { bytesSent: 0, bytesReceived: 0, trainingSeconds: 0, uploads: 0, problems: [] };
  const onLine = (line: string): void => {
    log.write(`${line}\n`);
    if (line.startsWith('{')) {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        spec.onLine(spec.tenant, line);
        return;
      }
      fold(figures, rec);
      const shown = describe(rec);
      if (shown) spec.onLine(spec.tenant, shown);
    } else if (line.trim() && !/^\(node:\d+\) |^\(Use `node --trace/.test(line)) {
      spec.onLine(spec.tenant, line);
    }
  };
  const streamsDone = [child.stdout, child.stderr].map((s) => new Promise<void>((r) => createInterface({ input: s }).on('line', onLine).on('close', () => r())));
  const exited = new Promise<number | string>((resolve) => {
    child.on('error', (e) => {
      log.write(`failed to start: ${e.message}\n`);
      resolve(`error: ${e.message}`);
    });
    child.on('exit', (code, signal) => {
      void Promise.all(streamsDone).then(() => {
        log.end();
        resolve(code ?? signal ?? 'unknown');
      });
    });
  });
  return {
    tenant: spec.tenant,
    child,
    logFile,
    figures,
    exited,
    async stop(graceMs = 10_000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        try {
          return await exited;
        } finally {
          clearTimeout(timer);
        }
      }
      return exited;
    },
  };
}
