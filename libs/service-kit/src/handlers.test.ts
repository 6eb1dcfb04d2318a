import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { waitFor, type Logger } from '@fedmm/core';
import { registry as rpb } from '@fedmm/proto';
import { createRpcClient } from './client.js';
import { serverStream } from './handlers.js';
import { startGrpcServer } from './server.js';

function recordingLogger(records: { level: string; msg: string }[]): Logger {
  const at = (level: string) => (msg: string): void => { records.push({ level, msg }); };
  const log: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  return log;
}

test('a server stream the client cancels ends with CANCELLED and is not logged as a failure', async () => {
  const records: { level: string; msg: string }[] = [];
  const log = recordingLogger(records);
  let reason: unknown;
  const server = await startGrpcServer({
    name: 'test', host: '127.0.0.1', port: 0, log,
    services: [{
      name: 'fedmm.v1.RegistryService',
      definition: rpb.RegistryServiceService,
      implementation: {
        downloadVersion: serverStream<rpb.DownloadVersionRequest, rpb.DownloadVersionResponse>('DownloadVersion', log, async (_req, write, ctx) => {
          try {
            // Writes until the client goes away.
            for (;;) await write(rpb.DownloadVersionResponse.fromPartial({ chunk: { data: Buffer.alloc(64 * 1024) } }));
          } catch (e) {
            reason = ctx.signal.reason;
            throw e;
          }
        }),
      },
    }],
  });
  const client = createRpcClient(rpb.RegistryServiceService, server.address);
  try {
    const call = client.downloadVersion(rpb.DownloadVersionRequest.fromPartial({ versionId: 'm@1' }));
    call.on('error', () => undefined);
    await new Promise<void>((resolve) => call.once('data', () => resolve()));
    call.cancel();
    await waitFor(() => reason !== undefined, { timeoutMs: 5000, what: 'the handler to see the cancellation' });
    assert.equal((reason as { code?: number }).code, status.CANCELLED);
    assert.deepEqual(records.filter((r) => r.level === 'error'), []);
  } finally {
    client.close();
    await server.shutdown(0);
  }
});
