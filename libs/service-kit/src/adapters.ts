import { EmbeddedBus, KafkaBus, type Bus } from '@fedmm/bus';
import { RedisStore, SqliteStore, type Store } from '@fedmm/store';
import type { Logger } from '@fedmm/core';
import { tracedStore } from '@fedmm/telemetry';
import type { BaseConfig } from './config.js';

/** Creates the bus the configuration names. An embedded bus can be shared between services of one process. */
export function createBus(cfg: BaseConfig, log: Logger, shared?: { bus?: Bus }): Bus {
  if (shared?.bus) return shared.bus;
  if (cfg.bus.kind === 'embedded') return new EmbeddedBus();
  return new KafkaBus({ brokers: cfg.bus.brokers, clientId: `fedmm-${cfg.service}`, ssl: cfg.bus.ssl, ...(cfg.bus.sasl ? { sasl: cfg.bus.sasl } : {}), logger: log });
}

/** Creates the store the configuration names; Redis calls are traced (client spans). */
export function createStore(cfg: BaseConfig, shared?: { store?: Store }): Store {
  if (shared?.store) return shared.store;
  if (cfg.store.kind === 'sqlite') return new SqliteStore(cfg.store.sqlitePath);
  return tracedStore(new RedisStore(cfg.store.redisUrl, cfg.store.redisPassword ? { password: cfg.store.redisPassword } : {}));
}
