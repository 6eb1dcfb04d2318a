import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkHealth } from '@fedmm/service-kit';
import { initPkiDir } from '@fedmm/pki';
import { kafkaBrokers, redisDbUrl, tempDir } from '../support/env.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const fedmm = join(root, 'bin/fedmm.js');

function run(args: string[], env: NodeJS.ProcessEnv): { done: Promise<{ code: number | null; out: string }>; kill: (sig: NodeJS.Signals) => void; output: () => string } {
  const p = spawn(process.execPath, [fedmm, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (b: Buffer) => (out += b.toString()));
  p.stderr.on('data', (b: Buffer) => (out += b.toString()));
  return {
    done: new Promise((resolve) => p.on('exit', (code) => resolve({ code, out }))),
    kill: (sig) => p.kill(sig),
    output: () => out,
  };
}

describe('each service runs alone as its own process', { timeout: 180_000 }, () => {
  const services = ['registry', 'privacy', 'valuation', 'aggregator', 'aggregator-worker', 'gateway'] as const;
  for (const [i, name] of services.entries()) {
    test(`fedmm serve ${name}: healthy on Kafka and Redis, drains and exits 0 on SIGTERM`, async () => {
      const dir = tempDir(`serve-${name}`);
      const port = 17100 + i * 2 + Math.floor(Math.random() * 50) * 20;
      const env: NodeJS.ProcessEnv = {
        FEDMM_BUS: 'kafka', FEDMM_KAFKA_BROKERS: kafkaBrokers.join(','), FEDMM_STORE: 'redis', FEDMM_REDIS_URL: redisDbUrl(13),
        FEDMM_GRPC_HOST: '127.0.0.1', FEDMM_GRPC_PORT: String(port), FEDMM_DATA_DIR: dir, FEDMM_LOG_LEVEL: 'info',
      };
      if (name === 'gateway') {
        // The gateway speaks only mutual TLS to clients; its plaintext health port is for probes.
        const pki = join(dir, 'pki');
        await initPkiDir(pki, { tenants: ['acme'], serverNames: ['localhost'] });
        Object.assign(env, { FEDMM_TLS_CERT: join(pki, 'server.crt'), FEDMM_TLS_KEY: join(pki, 'server.key'), FEDMM_TLS_CA: join(pki, 'ca.crt'), FEDMM_HEALTH_PORT: String(port + 1) });
      }
      const proc = run(['serve', name], env);
      const healthAddr = `127.0.0.1:${name === 'gateway' ? port + 1 : port}`;
      const deadline = Date.now() + 60_000;
      let status = '';
      while (Date.now() < deadline) {
        status = await checkHealth(healthAddr, { deadlineMs: 1000 }).catch(() => '');
        if (status === 'SERVING') break;
        await new Promise((r) => setTimeout(r, 300));
      }
      assert.equal(status, 'SERVING', `health of ${name}; output:\n${proc.output().slice(-2000)}`);
      proc.kill('SIGTERM');
      const { code, out } = await proc.done;
      assert.equal(code, 0, out.slice(-2000));
      assert.match(out, /"msg":"shutting down"/);
      // Logs are one JSON object per line.
      for (const line of out.split('\n').filter((l) => l.startsWith('{'))) JSON.parse(line);
    });
  }

  test('a bad environment value stops start-up with a message naming the variable and what is allowed', async () => {
    const { code, out } = await run(['serve', 'registry'], { FEDMM_BUS: 'rabbitmq', FEDMM_GRPC_PORT: 'eighty', FEDMM_REGISTRY_MAX_ARTIFACT_BYTES: '-5' }).done;
    assert.equal(code, 1);
    assert.match(out, /FEDMM_BUS="rabbitmq" is not allowed \(use one of: kafka, embedded\)/);
    assert.match(out, /FEDMM_GRPC_PORT="eighty" is not an integer/);
    assert.match(out, /FEDMM_REGISTRY_MAX_ARTIFACT_BYTES=-5 is below the minimum 1/);
  });

  test('fedmm with no command prints help; an unknown command fails with usage', async () => {
    const help = await run(['--help'], {}).done;
    assert.equal(help.code, 0);
    for (const c of ['serve', 'demo', 'client', 'task', 'round', 'privacy', 'contributions', 'audit', 'pki', 'data', 'model']) assert.match(help.out, new RegExp(`\\n  ${c}\\s`), `help lists ${c}`);
    const bad = await run(['frobnicate'], {}).done;
    assert.equal(bad.code, 2);
    assert.match(bad.out, /unknown command "frobnicate"/);
  });
});
