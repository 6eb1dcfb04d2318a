import type { Logger } from '@fedmm/core';

export interface Stoppable {
  stop(): Promise<void>;
}

/**
 * Runs a service until SIGTERM or SIGINT, then stops it (draining in-flight calls) and exits.
 * A second signal exits at once.
 */
export function trapSignals(service: Stoppable, log: Logger): void {
  let stopping = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (stopping) {
      log.warn('second signal; exiting now', { signal: sig });
      process.exit(130);
    }
    stopping = true;
    log.info('shutting down', { signal: sig });
    service.stop().then(
      () => process.exit(0),
      (e: unknown) => {
        log.error('shutdown failed', { err: e });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
