export * from './port.js';
export { EmbeddedBus } from './embedded.js';
export { KafkaBus, type KafkaBusOptions } from './kafka.js';
export { defaultPartition, murmur2 } from './partitioner.js';
export { injectTraceHeaders, withConsumerSpan, withProducerSpan } from './trace.js';
export { runBusContract } from './contract.js';
