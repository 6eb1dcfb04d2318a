import { EmbeddedBus } from './embedded.js';
import { runBusContract } from './contract.js';

runBusContract('embedded', async () => new EmbeddedBus({ partitions: 8, maxMessageBytes: 2 * 1024 * 1024 }));
