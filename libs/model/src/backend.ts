import * as tf from '@tensorflow/tfjs';
import { setThreadsCount, getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { failedPrecondition, invalidArgument } from '@fedmm/core';

/** Backends the model can run on; the tfjs-node ones are optional packages loaded only when installed. */
export type BackendChoice = 'auto' | 'wasm' | 'cpu' | 'tfjs-node' | 'tfjs-node-gpu';

/** What `initBackend` settled on. */
export interface BackendInfo {
  /** The tfjs backend name now active ('wasm', 'cpu' or 'tensorflow'). */
  readonly backend: string;
  /** The package that provided it. */
  readonly source: Exclude<BackendChoice, 'auto'>;
  readonly simd: boolean;
  readonly threads: number;
}

async function loadNative(pkg: 'tfjs-node' | 'tfjs-node-gpu'): Promise<boolean> {
  // A variable specifier keeps the compiler and bundlers from requiring the optional package.
  const specifier = `@tensorflow/${pkg}`;
  try {
    await import(specifier);
  } catch {
    return false;
  }
  return true;
}

async function activate(name: string): Promise<boolean> {
  const ok = await tf.setBackend(name);
  await tf.ready();
  return ok && tf.getBackend() === name;
}

/**
 * Selects and initialises the tfjs backend. 'auto' prefers tfjs-node-gpu, then tfjs-node, then wasm.
 * `threads` applies to wasm only and only where the runtime offers wasm threads.
 */
export async function initBackend(choice: BackendChoice = 'wasm', options: { threads?: number } = {}): Promise<BackendInfo> {
  const order: Exclude<BackendChoice, 'auto'>[] =
    choice === 'auto' ? ['tfjs-node-gpu', 'tfjs-node', 'wasm'] : [choice];
  for (const source of order) {
    if (source === 'tfjs-node' || source === 'tfjs-node-gpu') {
      if (!(await loadNative(source))) {
        if (choice === 'auto') continue;
        throw failedPrecondition(
          `backend ${source} is not installed (it downloads a native library at install); install @tensorflow/${source} or choose 'wasm'`,
        );
      }
      if (await activate('tensorflow')) return info(source);
      throw failedPrecondition(`backend ${source} loaded but did not initialise; check its native library`);
    }
    if (source === 'wasm') {
      if (options.threads !== undefined) {
        if (!Number.isInteger(options.threads) || options.threads < 1) {
          throw invalidArgument(`backend: threads must be a positive integer, got ${options.threads}`);
        }
        setThreadsCount(options.threads);
      }
      if (await activate('wasm')) return info('wasm');
      throw failedPrecondition('backend wasm did not initialise; check that the .wasm files of @tensorflow/tfjs-backend-wasm are present');
    }
    if (await activate('cpu')) return info('cpu');
    throw failedPrecondition('backend cpu did not initialise');
  }
  throw failedPrecondition(`no backend among ${order.join(', ')} could be initialised`);
}

function info(source: Exclude<BackendChoice, 'auto'>): BackendInfo {
  const wasm = source === 'wasm';
  return {
    backend: tf.getBackend(),
    source,
    simd: wasm && tf.env().getBool('WASM_HAS_SIMD_SUPPORT'),
    threads: wasm ? getThreadsCount() : 1,
  };
}
