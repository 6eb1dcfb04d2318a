import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { FedmmError, createLogger, sleep, type Logger } from '@fedmm/core';
import { loadSamples, type LoadedDataset } from '@fedmm/data';
import { events as epb, task as tpb } from '@fedmm/proto';
import type { Sample as ModelSample } from '@fedmm/model';
import { createLayout, sha256Hex } from '@fedmm/tensor';
import { writeFileAtomic } from './atomic-file.js';
import { backoffDelay, isRetryable } from './backoff.js';
import { compileAgentConfig, type AgentConfig, type AgentOptions } from './config.js';
import { GatewayConnection, type UploadOutcome } from './connection.js';
import { evaluateLocal, type LocalEvaluation } from './evaluate.js';
import { ModelSource } from './model-source.js';
import { stderrSink, trainingProgress, transferProgress, type ProgressSink } from './progress.js';
import { AgentState, type RoundEntry } from './state.js';
import { toModelSamples, trainRoundInWorker, type RoundTraining } from './training.js';
import type { UpdatePayload } from './update-payload.js';
import { buildUpdatePayload } from './update-payload.js';
import { flattenUpdate, maskedPayload, SecAggSession } from './secagg.js';

/** How the agent's part in one round ended. */
export type RoundOutcome =
  | { readonly status: 'uploaded'; readonly uploadId: string; readonly upload: UploadOutcome; readonly resumed: boolean }
  | { readonly status: 'skipped'; readonly reason: string }
  | { readonly status: 'missed' | 'failed'; readonly reason: string };

/** A saved update: what a restarted agent needs to resume the same upload byte for byte. */
interface SavedUpdate {
  readonly uploadId: string;
  readonly sha256: string;
  readonly tensors: { name: string; shape: number[]; modality?: string }[];
  readonly numExamples: number;
  readonly dp: { samplingRate: number; noiseMultiplier: number; steps: number };
}

/** Waits `ms`, or less when the signal aborts (never rejects). */
function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return sleep(ms, signal).catch(() => undefined);
}

function isRoundClosed(e: unknown): boolean {
  return e instanceof FedmmError && (e.code === 'FAILED_PRECONDITION' || e.code === 'DEADLINE_EXCEEDED') && /not open|deadline|too late|is (sealing|aggregating|published|failed)/i.test(e.message);
}

/**
 * The company agent: a long-lived process beside the company's data. It subscribes to its tasks'
 * round events, joins each round it is selected for, trains the round's global adapters on local
 * data, and uploads the delta through the gateway. The state file guarantees at most one upload
 * per (task, round, attempt), across crashes and restarts.
 */
export class Agent {
  readonly config: AgentConfig;
  readonly state: AgentState;
  readonly connection: GatewayConnection;
  readonly models: ModelSource;
  readonly #log: Logger;
  readonly #progress: ProgressSink;
  #dataset: LoadedDataset | undefined;
  #prepared: { tokenizerKey: string; train: ModelSample[]; test?: ModelSample[] } | undefined;
  readonly #termsSent = new Set<string>();
  /** Tasks the platform did not know at the last check (each logged once while it is awaited). */
  readonly #waitingFor = new Set<string>();
  /** Rounds being worked on in this process, so a catch-up and an event never start the same round twice. */
  readonly #inFlight = new Map<string, Promise<RoundOutcome>>();
  /** Evaluations of published versions, newest last. */
  readonly evaluations: LocalEvaluation[] = [];

  constructor(options: AgentOptions) {
    this.config = compileAgentConfig(options);
    mkdirSync(this.config.workDir, { recursive: true });
    this.#log = (options.log ?? createLogger({ component: 'agent' })).child({ tenant: this.config.tenant });
    this.#progress = options.progress ?? stderrSink;
    this.state = AgentState.open(this.config.workDir);
    this.connection = new GatewayConnection({
      address: this.config.gateway,
      ...(this.config.tls ? { tls: this.config.tls } : {}),
      ...(this.config.credentials ? { credentials: this.config.credentials } : {}),
      ...(this.config.backoff ? { backoff: this.config.backoff } : {}),
      ...(this.config.chunkBytes ? { chunkBytes: this.config.chunkBytes } : {}),
      log: this.#log,
    });
    this.models = new ModelSource(this.connection, this.config.workDir, this.#log);
  }

  /**
   * Runs until `signal` aborts (SIGTERM in the CLI): subscribes to the tasks that exist, catches up
   * after each (re)connection and answers round events. Tasks the platform does not know yet are
   * rechecked with capped backoff and joined as soon as they exist, without holding up the others.
   * A task that exists without this tenant among its members ends the run with PERMISSION_DENIED:
   * members are fixed when the task is created, so waiting cannot help.
   */
  async run(signal: AbortSignal): Promise<void> {
    this.#log.info('agent started', { gateway: this.config.gateway, tasks: this.config.taskIds });
    const live = new Set<string>();
    try {
      while (!signal.aborted) {
        await this.#awaitLiveTasks(live, signal);
        if (signal.aborted) break;
        const waiting = this.config.taskIds.filter((t) => !live.has(t));
        // Ends this subscription when a waited-for task appears, so the next one includes it.
        const subscription = new AbortController();
        const stop = (): void => subscription.abort();
        signal.addEventListener('abort', stop, { once: true });
        const watcher = waiting.length > 0 ? this.#watchTasks(waiting, live, subscription, signal) : Promise.resolve(undefined);
        let fatal: unknown;
        try {
          for await (const item of this.connection.subscribe([...live], subscription.signal)) {
            if (item.kind === 'connected') {
              await this.catchUp(signal, [...live]).catch((e: unknown) => this.#warnUnlessAborted(signal, 'catching up with the tasks failed', e));
            } else {
              await this.handleEvent(item.event, signal).catch((e: unknown) => this.#warnUnlessAborted(signal, 'handling a round event failed', e));
            }
          }
        } catch (e) {
          if (!(e instanceof FedmmError && e.code === 'NOT_FOUND')) throw e;
          // Not expected (tasks are never deleted), but a task the gateway no longer finds is waited for again.
          this.#log.warn('the gateway refused the subscription for an unknown task; checking the tasks again', { err: e });
          live.clear();
          await sleepUnlessAborted(backoffDelay(this.config.taskWait, 0), signal);
        } finally {
          subscription.abort();
          signal.removeEventListener('abort', stop);
          fatal = await watcher.catch((e: unknown) => e);
        }
        if (fatal) throw fatal;
      }
    } finally {
      await Promise.allSettled(this.#inFlight.values());
      this.close();
      this.#log.info('agent stopped', {});
    }
  }

  /**
   * Checks every task not yet live and adds those that exist to `live`; while none is live it keeps
   * rechecking with the task-wait backoff. Throws PERMISSION_DENIED for a task this tenant is not a member of.
   */
  async #awaitLiveTasks(live: Set<string>, signal: AbortSignal): Promise<void> {
    for (let retry = 0; !signal.aborted; retry++) {
      const pending = this.config.taskIds.filter((t) => !live.has(t));
      const found = await Promise.all(pending.map((t) => this.#taskExists(t, signal)));
      pending.forEach((t, i) => {
        if (found[i]) live.add(t);
      });
      if (live.size > 0) return;
      await sleepUnlessAborted(backoffDelay(this.config.taskWait, retry), signal);
    }
  }

  /** Rechecks the waited-for tasks with backoff; when one exists, ends `subscription` (resolves with a fatal error, if any). */
  async #watchTasks(waiting: readonly string[], live: Set<string>, subscription: AbortController, signal: AbortSignal): Promise<FedmmError | undefined> {
    for (let retry = 0; !subscription.signal.aborted; retry++) {
      await sleepUnlessAborted(backoffDelay(this.config.taskWait, retry), subscription.signal);
      if (subscription.signal.aborted) return undefined;
      let appeared = false;
      for (const t of waiting) {
        try {
          if (await this.#taskExists(t, signal)) {
            live.add(t);
            appeared = true;
          }
        } catch (e) {
          subscription.abort();
          if (e instanceof FedmmError) return e;
          throw e;
        }
      }
      if (appeared) {
        subscription.abort();
        return undefined;
      }
    }
    return undefined;
  }

  /**
   * Whether a task exists for this tenant: true once GetTask answers, false while it is NOT_FOUND
   * (logged once per task) or the gateway cannot be reached. PERMISSION_DENIED is thrown with what to do.
   */
  async #taskExists(taskId: string, signal: AbortSignal): Promise<boolean> {
    try {
      await this.connection.getTask(taskId, signal);
    } catch (e) {
      if (signal.aborted) return false;
      if (e instanceof FedmmError && e.code === 'NOT_FOUND') {
        if (!this.#waitingFor.has(taskId)) {
          this.#waitingFor.add(taskId);
          this.#log.warn('the task does not exist yet on the platform; waiting for it', { task: taskId, recheckEverySeconds: this.config.taskWait.capMs / 1000 });
        }
        return false;
      }
      if (e instanceof FedmmError && e.code === 'PERMISSION_DENIED') {
        throw new FedmmError('PERMISSION_DENIED', `tenant ${this.config.tenant} is not a member of task ${taskId}, and members are fixed when a task is created, so waiting will not help: ask the consortium to create the task with ${this.config.tenant} among its members, or remove --task ${taskId} (${e.message})`, { task: taskId });
      }
      if (isRetryable(e)) {
        this.#log.warn('could not reach the gateway to check the task; checking again later', { task: taskId, err: e });
        return false;
      }
      throw e;
    }
    if (this.#waitingFor.delete(taskId)) this.#log.info('the task now exists; joining it', { task: taskId });
    return true;
  }

  #warnUnlessAborted(signal: AbortSignal, msg: string, e: unknown): void {
    if (!signal.aborted) this.#log.warn(msg, { err: e });
  }

  close(): void {
    this.models.dispose();
    this.connection.close();
  }

  /**
   * Asks the gateway for each task's current round and joins it if it is open for this tenant
   * (events may have been missed). A task that fails is logged and does not hold up the others.
   */
  async catchUp(signal?: AbortSignal, taskIds: readonly string[] = this.config.taskIds): Promise<RoundOutcome[]> {
    const out: RoundOutcome[] = [];
    for (const taskId of taskIds) {
      try {
        const outcome = await this.#catchUpTask(taskId, signal);
        if (outcome) out.push(outcome);
      } catch (e) {
        if (signal?.aborted) throw e;
        this.#log.warn('catching up with the task failed', { task: taskId, err: e });
      }
    }
    return out;
  }

  async #catchUpTask(taskId: string, signal?: AbortSignal): Promise<RoundOutcome | undefined> {
    const res = await this.connection.getTask(taskId, signal);
    const task = res.task;
    if (!task) return undefined;
    await this.#maybeAcceptTerms(task, signal);
    const r = res.currentRound;
    if (!r || (r.state !== tpb.RoundState.ROUND_STATE_OPEN && r.state !== tpb.RoundState.ROUND_STATE_COLLECTING)) return undefined;
    const opened = epb.RoundOpened.fromPartial({
      selected: r.selected,
      inputVersionId: r.inputVersionId,
      deadlineUnixMs: r.deadline ? r.deadline.seconds * 1000 + Math.floor(r.deadline.nanos / 1e6) : 0,
      clientConfig: task.clientConfig,
      ...(task.strategy ? { strategy: task.strategy } : {}),
      ...(task.privacy ? { privacy: task.privacy } : {}),
      attempt: r.attempt,
    });
    return this.joinRound(taskId, r.number, opened, signal);
  }

  async #maybeAcceptTerms(task: tpb.Task, signal?: AbortSignal): Promise<void> {
    if (!task.termsDigest) return;
    const key = `${task.taskId}:${task.termsDigest}`;
    if (this.#termsSent.has(key)) return;
    if (!this.config.acceptTerms) {
      this.#log.warn('the task has terms this agent has not accepted; the platform selects only members who accepted them — review them and restart with --accept-terms', { task: task.taskId, termsDigest: task.termsDigest });
      this.#termsSent.add(key);
      return;
    }
    await this.connection.acceptTerms(task, signal);
    this.#termsSent.add(key);
    this.#log.info('accepted the task terms', { task: task.taskId, termsDigest: task.termsDigest });
  }

  /** Reacts to one round event: joins opened rounds it is selected for, evaluates published versions. */
  async handleEvent(event: epb.RoundEvent, signal?: AbortSignal): Promise<RoundOutcome | LocalEvaluation | undefined> {
    const e = event.event;
    if (!e) return undefined;
    switch (e.$case) {
      case 'opened':
        return this.joinRound(event.taskId, event.round, e.value, signal);
      case 'published':
        this.#log.info('round published', { task: event.taskId, round: event.round, version: e.value.versionId });
        if (this.config.testDir) return this.evaluateVersion(e.value.versionId, signal);
        return undefined;
      case 'failed':
        this.#log.warn('round failed', { task: event.taskId, round: event.round, reason: e.value.reason, willRetry: e.value.willRetry });
        return undefined;
      case 'sealed':
        this.#log.info('round sealed', { task: event.taskId, round: event.round, received: e.value.received.length, dropped: e.value.dropped.length, ours: e.value.received.includes(this.config.tenant) });
        return undefined;
    }
  }

  /** Takes part in one round attempt: never twice, resuming an interrupted upload under its saved upload id. */
  joinRound(taskId: string, round: number, opened: epb.RoundOpened, signal?: AbortSignal): Promise<RoundOutcome> {
    const key = `${taskId}/${round}/${opened.attempt}`;
    const running = this.#inFlight.get(key);
    if (running) return running;
    const p = this.#joinRound(taskId, round, opened, signal).finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, p);
    return p;
  }

  async #joinRound(taskId: string, round: number, opened: epb.RoundOpened, signal?: AbortSignal): Promise<RoundOutcome> {
    const { tenant } = this.config;
    const attempt = opened.attempt;
    const log = this.#log.child({ task: taskId, round, attempt });
    if (!opened.selected.includes(tenant)) return { status: 'skipped', reason: 'not selected' };
    const entry = this.state.get(taskId, round, attempt);
    if (entry && entry.status !== 'uploading') return { status: 'skipped', reason: `already ${entry.status}` };
    if (entry?.status === 'uploading') {
      log.info('resuming the interrupted upload of this round', { uploadId: entry.uploadId });
      return this.#upload(entry, this.#readSaved(entry), true, signal, log);
    }
    if (opened.deadlineUnixMs > 0 && Date.now() >= opened.deadlineUnixMs) {
      this.state.set({ task: taskId, round, attempt, status: 'missed', reason: 'deadline passed before the agent saw the round' });
      return { status: 'missed', reason: 'deadline passed' };
    }
    if (opened.privacy?.secureAggregation) return this.#joinSecureRound(taskId, round, opened, signal, log);
    let saved: { meta: SavedUpdate; payload: UpdatePayload };
    try {
      saved = await this.#prepare(taskId, round, opened, signal, log);
    } catch (e) {
      return this.#prepareFailed(taskId, round, attempt, e, signal, log);
    }
    return this.#uploadSaved(taskId, round, attempt, saved, signal, log);
  }

  /**
   * A round under secure aggregation: the key exchange (stages 0 and 1) runs while the model
   * trains; the update is clipped to the task's clip norm and masked, the masked words are uploaded
   * through the usual path, and the agent then reveals the shares the coordinator asks for, once.
   */
  async #joinSecureRound(taskId: string, round: number, opened: epb.RoundOpened, signal: AbortSignal | undefined, log: Logger): Promise<RoundOutcome> {
    const attempt = opened.attempt;
    const session = new SecAggSession({ connection: this.connection, taskId, round, attempt, tenant: this.config.tenant, deadlineUnixMs: opened.deadlineUnixMs, log });
    let saved: { meta: SavedUpdate; payload: UpdatePayload };
    try {
      const [, plain] = await Promise.all([session.handshake(signal), this.#prepare(taskId, round, opened, signal, log)]);
      const words = await session.mask(flattenUpdate(plain.payload), opened.privacy?.clipNorm ?? 0, signal);
      const payload = maskedPayload(plain.payload.layout, words);
      saved = { meta: { ...plain.meta, sha256: payload.sha256 }, payload };
    } catch (e) {
      return this.#prepareFailed(taskId, round, attempt, e, signal, log);
    }
    const outcome = await this.#uploadSaved(taskId, round, attempt, saved, signal, log);
    if (outcome.status === 'uploaded') {
      await session.unmask(signal).then(
        () => log.info('revealed the unmasking shares', {}),
        (e: unknown) => { if (!signal?.aborted) log.warn('could not answer the unmask request; the round relies on the other survivors', { err: e }); },
      );
    }
    return outcome;
  }

  #prepareFailed(taskId: string, round: number, attempt: number, e: unknown, signal: AbortSignal | undefined, log: Logger): RoundOutcome {
    if (signal?.aborted) throw e;
    const reason = (e as Error).message;
    log.error('could not prepare the update', { err: e });
    if (!(e instanceof FedmmError) || !['UNAVAILABLE', 'DEADLINE_EXCEEDED'].includes(e.code)) this.state.set({ task: taskId, round, attempt, status: 'failed', reason });
    return { status: 'failed', reason };
  }

  async #uploadSaved(taskId: string, round: number, attempt: number, saved: { meta: SavedUpdate; payload: UpdatePayload }, signal: AbortSignal | undefined, log: Logger): Promise<RoundOutcome> {
    // The update is on disk and the state says 'uploading' before the first byte goes out.
    const file = join('updates', saved.meta.uploadId);
    writeFileAtomic(join(this.config.workDir, `${file}.bin`), saved.payload.bytes);
    writeFileAtomic(join(this.config.workDir, `${file}.json`), JSON.stringify(saved.meta, null, 2) + '\n');
    const uploading = this.state.set({ task: taskId, round, attempt, status: 'uploading', uploadId: saved.meta.uploadId, sha256: saved.payload.sha256, updateFile: file });
    return this.#upload(uploading, saved, false, signal, log);
  }

  /** Trains the round and builds the update (F32 delta in layout order). */
  async #prepare(taskId: string, round: number, opened: epb.RoundOpened, signal: AbortSignal | undefined, log: Logger): Promise<{ meta: SavedUpdate; payload: UpdatePayload }> {
    const { tenant } = this.config;
    const attempt = opened.attempt;
    this.models.useTask(taskId);
    const model = await this.models.loadRound(opened.inputVersionId, signal);
    const data = await this.#samples(model.baseVersionId, model.base.tokenizer, model.base.config.numClasses);
    log.info('training', { samples: data.train.length, input: opened.inputVersionId });
    // The longest stretch the event loop could not run (keepalive acks, the round-event stream, SIGTERM) while training.
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    let trained: RoundTraining;
    try {
      const onProgress = trainingProgress(`[${taskId} r${round}] train`, this.#progress);
      trained = await trainRoundInWorker({ model, samples: data.train, opened, taskId, round, seed: this.config.seed, backend: this.config.backend, ...(signal ? { signal } : {}), onProgress });
    } finally {
      loopDelay.disable();
    }
    const s = trained.result.stats;
    log.info('trained', { epochs: s.epochs, steps: s.steps, seconds: s.seconds, samplesPerSec: Math.round(s.samplesPerSec), updateNorm: s.updateNorm, clipped: s.clipped, config: trained.config, eventLoopMaxDelayMs: Math.round(loopDelay.max / 1e6) });
    const payload = buildUpdatePayload(trained.delta);
    const uploadId = `${tenant}.${taskId}.r${round}.a${attempt}.${randomBytes(6).toString('hex')}`;
    const meta: SavedUpdate = {
      uploadId,
      sha256: payload.sha256,
      tensors: payload.layout.entries.map((e) => ({ name: e.name, shape: [...e.shape], ...(e.modality ? { modality: e.modality } : {}) })),
      numExamples: trained.numExamples,
      dp: trained.dp,
    };
    return { meta, payload };
  }

  #readSaved(entry: RoundEntry): { meta: SavedUpdate; payload: UpdatePayload } {
    const base = join(this.config.workDir, entry.updateFile ?? '');
    if (!entry.updateFile || !existsSync(`${base}.bin`) || !existsSync(`${base}.json`)) {
      throw new FedmmError('DATA_LOSS', `the saved update of ${entry.task} round ${entry.round} (${entry.updateFile ?? 'no file'}) is missing from ${this.config.workDir}; the round cannot be resumed without uploading a different update — mark it failed in ${this.state.file} to move on`);
    }
    const meta = JSON.parse(readFileSync(`${base}.json`, 'utf8')) as SavedUpdate;
    const bytes = new Uint8Array(readFileSync(`${base}.bin`));
    const sha256 = sha256Hex(bytes);
    if (sha256 !== meta.sha256 || sha256 !== entry.sha256) {
      throw new FedmmError('DATA_LOSS', `the saved update ${base}.bin has sha256 ${sha256}, the state says ${entry.sha256 ?? '?'}; the file was damaged`);
    }
    const layout = createLayout(meta.tensors.map((t) => ({ name: t.name, dtype: 'F32', shape: t.shape, ...(t.modality ? { modality: t.modality } : {}) })));
    return { meta, payload: { layout, bytes, sha256 } };
  }

  async #upload(entry: RoundEntry, saved: { meta: SavedUpdate; payload: UpdatePayload }, resume: boolean, signal: AbortSignal | undefined, log: Logger): Promise<RoundOutcome> {
    const { task, round } = entry;
    const uploadId = saved.meta.uploadId;
    const finish = (status: 'done' | 'missed' | 'failed', reason?: string): void => {
      this.state.set({ ...entry, status, ...(reason ? { reason } : {}) });
      const base = join(this.config.workDir, entry.updateFile ?? '');
      if (entry.updateFile) for (const ext of ['.bin', '.json']) rmSync(`${base}${ext}`, { force: true });
    };
    try {
      const upload = await this.connection.uploadUpdate({
        taskId: task,
        round,
        uploadId,
        update: saved.payload,
        numExamples: saved.meta.numExamples,
        samplingRate: saved.meta.dp.samplingRate,
        noiseMultiplier: saved.meta.dp.noiseMultiplier,
        steps: saved.meta.dp.steps,
        resume,
        ...(signal ? { signal } : {}),
        onProgress: transferProgress(`[${task} r${round}] upload`, this.#progress),
      });
      finish('done');
      log.info('update uploaded', { uploadId, bytes: saved.payload.bytes.length, attempts: upload.attempts, resumedFrom: upload.resumedFrom });
      return { status: 'uploaded', uploadId, upload, resumed: resume || upload.attempts > 1 };
    } catch (e) {
      if (signal?.aborted) throw e;
      if (e instanceof FedmmError && e.code === 'ALREADY_EXISTS') {
        // Only this tenant's certificate uploads for it, and it never starts a second upload id: the first one landed.
        finish('done', e.message);
        return { status: 'uploaded', uploadId, upload: { uploadId, bytesReceived: saved.payload.bytes.length, shards: 0, attempts: 0, resumedFrom: [] }, resumed: true };
      }
      if (isRoundClosed(e)) {
        finish('missed', (e as Error).message);
        log.warn('the round closed before the update arrived', { err: e });
        return { status: 'missed', reason: (e as Error).message };
      }
      if (e instanceof FedmmError && ['UNAVAILABLE', 'DEADLINE_EXCEEDED', 'ABORTED', 'RESOURCE_EXHAUSTED', 'INTERNAL'].includes(e.code)) {
        // Still 'uploading': the next catch-up (or a restart) resumes this same upload.
        log.warn('upload interrupted; it resumes when the gateway is back', { err: e, uploadId });
        return { status: 'failed', reason: e.message };
      }
      finish('failed', (e as Error).message);
      log.error('the gateway refused the update', { err: e });
      return { status: 'failed', reason: (e as Error).message };
    }
  }

  async #samples(tokenizerKey: string, tokenizer: Parameters<typeof toModelSamples>[1], numClasses: number): Promise<{ train: ModelSample[]; test?: ModelSample[] }> {
    if (this.#prepared?.tokenizerKey === tokenizerKey) return this.#prepared;
    this.#dataset ??= await loadSamples(this.config.dataDir, this.config.classes ? { classes: this.config.classes } : {});
    const ds = this.#dataset;
    if (ds.classes.length !== numClasses) {
      throw new FedmmError('FAILED_PRECONDITION', `the data in ${this.config.dataDir} has ${ds.classes.length} classes (${ds.classes.join(', ')}) but the model predicts ${numClasses}; pass the task's class list with --classes`);
    }
    const train = toModelSamples(ds.samples, tokenizer);
    let test: ModelSample[] | undefined;
    if (this.config.testDir) {
      const t = await loadSamples(this.config.testDir, { classes: ds.classes });
      test = toModelSamples(t.samples, tokenizer);
    }
    this.#prepared = { tokenizerKey, train, ...(test ? { test } : {}) };
    return this.#prepared;
  }

  /**
   * Accuracy of a version (the shared model) on the company's own test set and, with
   * personalization on, of the personalized model; written to evaluation.json in the work dir.
   */
  async evaluateVersion(versionId: string, signal?: AbortSignal, personal = this.config.personalize): Promise<LocalEvaluation> {
    const model = await this.models.loadRound(versionId, signal);
    const data = await this.#samples(model.baseVersionId, model.base.tokenizer, model.base.config.numClasses);
    if (!data.test) throw new FedmmError('FAILED_PRECONDITION', 'evaluation needs a test set; pass --test DIR');
    const result = evaluateLocal({
      versionId,
      base: model.base,
      shared: model.adapters,
      testSamples: data.test,
      trainSamples: data.train,
      ...(this.#dataset ? { classes: this.#dataset.classes } : {}),
      ...(personal ? { personal: { file: join(this.config.workDir, 'personal-adapter.safetensors'), ...personal } } : {}),
      seed: this.config.seed,
    });
    this.evaluations.push(result);
    writeFileAtomic(join(this.config.workDir, 'evaluation.json'), JSON.stringify(this.evaluations, null, 2) + '\n');
    this.#log.info('evaluated on the local test set', { version: versionId, shared: result.shared.accuracy, personalized: result.personalized?.accuracy });
    return result;
  }
}
