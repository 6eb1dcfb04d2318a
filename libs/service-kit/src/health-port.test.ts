import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { aggregator as apb } from '@fedmm/proto';
import { createLogger, FedmmError } from '@fedmm/core';
import { EmbeddedBus } from '@fedmm/bus';
import { SqliteStore } from '@fedmm/store';
import { checkHealth } from './health.js';
import { createRpcClient } from './client.js';
import { hostService, type HostedService, type ServiceModule } from './host.js';
import { unary } from './handlers.js';

const log = createLogger({}, 'error');

// A service with one implemented method, so the test can tell which port serves what.
const probeModule: ServiceModule<Record<string, never>> = {
  name: 'aggregator',
  readConfig: () => ({}),
  async start() {
    return {
      bindings: [{
        name: 'fedmm.v1.AggregatorService',
        definition: apb.AggregatorServiceService,
        implementation: { listTasks: unary('fedmm.v1.AggregatorService/ListTasks', log, async () => apb.ListTasksResponse.fromPartial({})) },
      }],
      async stop() {},
    };
  },
};

async function host(extra: NodeJS.ProcessEnv): Promise<HostedService> {
  const bus = new EmbeddedBus();
  const store = new SqliteStore(':memory:');
  const hosted = await hostService(probeModule, env(extra), { bus, store, log }).catch(async (e: unknown) => {
    await bus.close();
    await store.close();
    throw e;
  });
  return { ...hosted, stop: async () => { await hosted.stop(); await bus.close(); await store.close(); } };
}

function env(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const dir = mkdtempSync(join(tmpdir(), 'fedmm-health-'));
  return { FEDMM_GRPC_HOST: '127.0.0.1', FEDMM_GRPC_PORT: '0', FEDMM_DATA_DIR: dir, FEDMM_SHUTDOWN_GRACE_MS: '500', ...extra };
}

describe('plaintext health port (FEDMM_HEALTH_PORT)', () => {
  test('serves only grpc.health.v1, mirrors the main server, and closes with it', async () => {
    const hosted = await host({ FEDMM_HEALTH_PORT: '0' });
    let stopped = false;
    try {
      const health = hosted.healthServer;
      assert.ok(health, 'a health server when FEDMM_HEALTH_PORT is set');
      assert.notEqual(health.port, hosted.port);
      assert.equal(await checkHealth(health.address), 'SERVING');
      assert.equal(await checkHealth(health.address, { service: 'fedmm.v1.AggregatorService' }), 'SERVING');
      await assert.rejects(checkHealth(health.address, { service: 'fedmm.v1.Nope' }), (e: unknown) => e instanceof FedmmError && e.code === 'NOT_FOUND');

      // The application service answers on the main port only.
      const main = createRpcClient(apb.AggregatorServiceService, hosted.address);
      const onHealth = createRpcClient(apb.AggregatorServiceService, health.address);
      try {
        assert.deepEqual((await main.listTasks({})).tasks, []);
        await assert.rejects(onHealth.listTasks({}, { deadlineMs: 2000 }), /does not implement/);
      } finally {
        main.close();
        onHealth.close();
      }

      hosted.server.setServing(false);
      assert.equal(await checkHealth(health.address), 'NOT_SERVING');
      hosted.server.setServing(true);
      assert.equal(await checkHealth(health.address), 'SERVING');

      await hosted.stop();
      stopped = true;
      await assert.rejects(checkHealth(health.address, { deadlineMs: 1000 }), 'the health port closes when the service stops');
    } finally {
      if (!stopped) await hosted.stop();
    }
  });

  test('no health server unless FEDMM_HEALTH_PORT is set', async () => {
    const hosted = await host({});
    try {
      assert.equal(hosted.healthServer, undefined);
      assert.equal(await checkHealth(hosted.address), 'SERVING');
    } finally {
      await hosted.stop();
    }
  });

  test('a health port that cannot be bound fails the start with the variable to change', async () => {
    const first = await host({ FEDMM_HEALTH_PORT: '0' });
    try {
      await assert.rejects(
        host({ FEDMM_HEALTH_PORT: String(first.healthServer!.port) }),
        (e: unknown) => e instanceof FedmmError && /FEDMM_HEALTH_PORT/.test(e.message),
      );
    } finally {
      await first.stop();
    }
  });
});
