import { PlatformAuditLog } from '@fedmm/audit';
import type { ServiceContext, ServiceModule } from '@fedmm/service-kit';
import {
  registryAccessRules, registryArtifacts, validationDirOf, registryParams, storeContributionRepo, storeRoundSource, storeSecureAggregates,
} from './adapters.js';
import { readValuationConfig, type ValuationConfig } from './config.js';
import type { EvaluatorSource, ParamsSource, SecureAggregates } from './domain/ports.js';
import { Scorer } from './domain/scorer.js';
import { auditBinding } from './handlers/audit-handlers.js';
import { valuationBinding } from './handlers/valuation-handlers.js';
import { UpdateCollector } from './updates/collector.js';
import { UpdateFiles } from './updates/update-files.js';

/** What a host may replace in the valuation service (tests, a deployment with its own metric). */
export interface ValuationModuleOptions {
  /** The task's validation metric; default: the model library on `FEDMM_VALUATION_DATA_DIR/<task>`, else the fallback. */
  readonly evaluators?: (ctx: ServiceContext<ValuationConfig>, params: ParamsSource) => EvaluatorSource;
  /** Secure sub-aggregates of a round; default: the aggregator's group sums in the store (the whole round as one group when the task has no groups). */
  readonly secure?: (ctx: ServiceContext<ValuationConfig>, params: ParamsSource) => SecureAggregates;
  /** Local storage of individual updates. */
  readonly updateFiles?: (dir: string) => UpdateFiles;
}

/** Builds the valuation service module; `valuationModule` is it with the defaults. */
export function createValuationModule(options: ValuationModuleOptions = {}): ServiceModule<ValuationConfig> {
  return {
    name: 'valuation',
    readConfig: readValuationConfig,
    async start(ctx) {
      const { config, store, bus, log } = ctx;
      const files = options.updateFiles?.(config.updatesDir) ?? new UpdateFiles(config.updatesDir);
      const registry = registryParams(ctx.base.peers.registry, ctx.peerCredentials);
      const access = registryAccessRules(ctx.base.peers.registry, ctx.peerCredentials);
      const audit = new PlatformAuditLog({ store, bus });
      const rounds = storeRoundSource(store);
      const repo = storeContributionRepo(store);
      const defaults = defaultEvaluators(ctx);
      const evaluators = options.evaluators?.(ctx, registry.params) ?? defaults.source;
      const scorer = new Scorer({
        rounds,
        params: registry.params,
        updates: files,
        evaluators,
        secure: options.secure?.(ctx, registry.params) ?? storeSecureAggregates(store, registry.params),
        accessRules: access.set,
        audit,
        repo,
        log,
        exactMaxCompanies: config.exactMaxCompanies,
        updateWaitMs: config.updateWaitMs,
        seed: config.seed,
      });
      const secureTasks = new Map<string, boolean>();
      const scored = new Set<string>();
      const collector = config.consumeUpdates
        ? new UpdateCollector({
            bus,
            files,
            log,
            group: config.consumerGroup,
            topic: config.updatesTopic,
            mayKeep: async (task, round) => {
              let secure = secureTasks.get(task);
              if (secure === undefined) {
                const t = await rounds.task(task);
                // Unknown task: its privacy settings cannot be checked, so nothing is kept.
                if (!t) return false;
                secureTasks.set(task, (secure = t.secureAggregation));
              }
              if (secure) return false;
              const key = `${task}/${round}`;
              if (scored.has(key)) return false;
              if ((await repo.get(task))?.rounds.some((r) => r.round === round)) {
                scored.add(key);
                return false;
              }
              return true;
            },
          })
        : undefined;
      await collector?.start();
      return {
        bindings: [valuationBinding(scorer, log), auditBinding(audit, log)],
        async stop() {
          await collector?.stop();
          registry.close();
          access.close();
          defaults.close();
        },
      };
    },
  };
}

/**
 * Tasks with a validation set at FEDMM_VALUATION_DATA_DIR/<task> are valued by model accuracy; the
 * model library (TensorFlow.js) loads only once such a task is scored.
 */
function defaultEvaluators(ctx: ServiceContext<ValuationConfig>): { source: EvaluatorSource; close(): void } {
  const artifacts = registryArtifacts(ctx.base.peers.registry, ctx.peerCredentials);
  let source: Promise<EvaluatorSource> | undefined;
  return {
    source: async (task, round) => {
      if (!validationDirOf(ctx.config.validationDataDir, task.taskId)) return undefined;
      source ??= Promise.all([import('./domain/model-evaluator.js'), import('@fedmm/model')]).then(([m, model]) =>
        m.modelEvaluators({
          validationDir: (id) => validationDirOf(ctx.config.validationDataDir, id),
          artifact: artifacts.artifact,
          loadBase: (a) => model.loadBase({ tensors: a.tensors, metadata: { ...a.metadata } }),
          log: ctx.log,
        }),
      );
      return (await source)(task, round);
    },
    close: () => artifacts.close(),
  };
}

/** The valuation service: contributions, rewards and access tiers; it also serves the audit trail. */
export const valuationModule: ServiceModule<ValuationConfig> = createValuationModule();
