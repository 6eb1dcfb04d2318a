import type { ServiceModule } from '@fedmm/service-kit';
import { Attr, fedmmMetrics } from '@fedmm/telemetry';
import { readPrivacyConfig, type PrivacyConfig } from './config.js';
import { PrivacyLedger } from './domain/ledger.js';
import { privacyBinding } from './handlers/privacy-handlers.js';

/** The privacy service: DP budgets per tenant and task, atomic reserve / commit / release, accounting and noise planning. */
export const privacyModule: ServiceModule<PrivacyConfig> = {
  name: 'privacy',
  readConfig: readPrivacyConfig,
  async start(ctx) {
    const metrics = fedmmMetrics();
    const ledger = new PrivacyLedger(
      ctx.store,
      {
        ...(ctx.config.defaultEpsilon !== undefined ? { defaultEpsilon: ctx.config.defaultEpsilon } : {}),
        defaultDelta: ctx.config.defaultDelta,
        onSpent: (tenant, task, eps) => metrics.epsilonSpent.set(eps, { [Attr.tenant]: tenant, [Attr.task]: task }),
      },
      ctx.log,
    );
    // The gauge starts from the ledger so a restarted service reports what was spent before.
    await ledger.publishSpent();
    return { bindings: [privacyBinding(ledger, ctx.log)], async stop() {} };
  },
};
