import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RedisStore } from './redis.js';
import { runStoreContract } from './contract.js';

// A dedicated instance, so killing it does not disturb other tests on the shared server.
const port = process.env['FEDMM_REDIS_CONTRACT_PORT'] ?? '6391';
const script = join(dirname(fileURLToPath(import.meta.url)), '../../../deploy/local/redis.sh');
const redis = (cmd: string): void => {
  execFileSync('bash', [script, cmd], { env: { ...process.env, FEDMM_REDIS_PORT: port }, stdio: ['ignore', 'ignore', 'inherit'] });
};
redis('start');
runStoreContract('redis', {
  open: async () => new RedisStore(`redis://127.0.0.1:${port}`),
  // SIGKILL, not a clean shutdown: only what AOF fsynced survives.
  restart: async () => {
    redis('crash');
    redis('start');
  },
});
