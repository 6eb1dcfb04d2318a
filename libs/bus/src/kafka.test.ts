import { KafkaBus } from './kafka.js';
import { runBusContract } from './contract.js';

const brokers = (process.env['FEDMM_KAFKA_BROKERS'] ?? '127.0.0.1:9092').split(',');
runBusContract('kafka', async () => new KafkaBus({ brokers, clientId: 'bus-contract', sessionTimeoutMs: 6000, heartbeatIntervalMs: 500 }), { rebalanceTimeoutMs: 60_000 });
