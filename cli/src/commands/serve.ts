import { parseArgs } from 'node:util';
import { createLogger } from '@fedmm/core';
import { hostService, trapSignals, ServiceNames, type ServiceName } from '@fedmm/service-kit';
import { startTelemetry } from '@fedmm/telemetry';
import { UsageError, type Command } from '../command.js';

export const serveCommand: Command = {
  name: 'serve',
  summary: 'run one platform service as its own process',
  usage: `fedmm serve <service>

Services: ${ServiceNames.join(', ')}.
Configuration comes from the environment (docs/CONFIGURATION.md): FEDMM_GRPC_PORT, FEDMM_BUS,
FEDMM_KAFKA_BROKERS, FEDMM_STORE, FEDMM_REDIS_URL, FEDMM_DATA_DIR, FEDMM_TLS_*, FEDMM_*_ADDR,
OTEL_EXPORTER_OTLP_ENDPOINT, FEDMM_PROMETHEUS_PORT.`,
  async run(argv) {
    const { positionals } = parseArgs({ args: argv, allowPositionals: true, options: {} });
    const name = positionals[0] as ServiceName | undefined;
    if (!name || !(ServiceNames as readonly string[]).includes(name)) throw new UsageError(`name a service: one of ${ServiceNames.join(', ')}`);
    // Telemetry starts before any service code creates servers, clients or adapters.
    const telemetry = startTelemetry({ serviceName: `fedmm-${name}` });
    const { serviceModules } = await import('../services.js');
    const module = serviceModules[name];
    if (!module) throw new UsageError(`service ${name} cannot run in this build`);
    const log = createLogger({ service: name });
    const hosted = await hostService(module, process.env, { log });
    log.info('service started', { address: hosted.address });
    trapSignals({ stop: async () => { await hosted.stop(); await telemetry.shutdown(); } }, log);
    await new Promise(() => undefined);
    return 0;
  },
};
