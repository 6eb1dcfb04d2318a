import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { createLogger } from '@fedmm/core';
import { startTelemetry } from '@fedmm/telemetry';
import type { Command } from '../command.js';

export const demoCommand: Command = {
  name: 'demo',
  summary: 'run the platform in one process and a federation of company agents against it',
  usage: `fedmm demo [--out DIR] [--keep-running]

Starts the five services in one process on the embedded adapters, checks each one's gRPC health
and prints where they listen.`,
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { out: { type: 'string', default: 'out/demo' }, 'keep-running': { type: 'boolean', default: false } } });
    const telemetry = startTelemetry({ serviceName: 'fedmm-demo' });
    const { startPlatform, platformHealth } = await import('../platform.js');
    const log = createLogger({ component: 'demo' }, 'warn');
    const out = resolve(values.out);
    const platform = await startPlatform({ dataDir: `${out}/platform`, log });
    const health = await platformHealth(platform);
    process.stdout.write('fedmm platform (embedded adapters, one process):\n');
    for (const s of platform.services) process.stdout.write(`  ${s.name.padEnd(12)} ${s.address.padEnd(18)} ${health[s.name] ?? 'mTLS'}\n`);
    const unhealthy = Object.entries(health).filter(([, v]) => v !== 'SERVING');
    if (unhealthy.length > 0) {
      process.stderr.write(`unhealthy services: ${unhealthy.map(([k, v]) => `${k}=${v}`).join(', ')}\n`);
      await platform.stop();
      return 1;
    }
    if (values['keep-running']) {
      process.stdout.write('running; press Ctrl-C to stop\n');
      await new Promise<void>((r) => process.once('SIGINT', () => r()));
    }
    await platform.stop();
    await telemetry.shutdown();
    return 0;
  },
};
