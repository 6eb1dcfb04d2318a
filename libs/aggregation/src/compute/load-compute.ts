import { FedmmError, failedPrecondition, invalidArgument } from '@fedmm/core';
import type { Compute } from './compute.js';
import { cpuCompute } from './cpu-compute.js';
import { createTfjsCompute, type TfModule } from './tfjs-compute.js';

/** Which kernels to run: typed arrays, TensorFlow.js on the GPU, or the GPU when installed. */
export type ComputeKind = 'cpu' | 'tfjs-node-gpu' | 'auto';

/** Package of the GPU kernels: an optional dependency that only the GPU worker image installs. */
export const TFJS_NODE_GPU = '@tensorflow/tfjs-node-gpu';

/** How loadCompute imports a module; replaceable so callers can supply an already loaded one. */
export type ModuleImporter = (specifier: string) => Promise<unknown>;

function isModuleNotFound(e: unknown, specifier: string): boolean {
  const err = e as { code?: unknown; message?: unknown };
  return (
    (err?.code === 'ERR_MODULE_NOT_FOUND' || err?.code === 'MODULE_NOT_FOUND') &&
    typeof err.message === 'string' && err.message.includes(specifier)
  );
}

/**
 * Returns the kernels for `kind`. 'tfjs-node-gpu' fails with FAILED_PRECONDITION when the package
 * is not installed; 'auto' uses it when installed and the CPU kernels otherwise.
 */
export async function loadCompute(kind: ComputeKind = 'auto', importer: ModuleImporter = (s) => import(s)): Promise<Compute> {
  if (kind === 'cpu') return cpuCompute;
  if (kind !== 'tfjs-node-gpu' && kind !== 'auto') {
    throw invalidArgument(`unknown compute '${String(kind)}'; use 'cpu', 'tfjs-node-gpu' or 'auto'`);
  }
  let mod: unknown;
  try {
    mod = await importer(TFJS_NODE_GPU);
  } catch (e) {
    if (isModuleNotFound(e, TFJS_NODE_GPU)) {
      if (kind === 'auto') return cpuCompute;
      throw failedPrecondition(
        `compute 'tfjs-node-gpu' was requested but ${TFJS_NODE_GPU} is not installed; run the GPU worker image (it installs the package) or set compute to 'cpu' or 'auto'`,
      );
    }
    throw new FedmmError(
      'UNAVAILABLE',
      `${TFJS_NODE_GPU} is installed but failed to load (${(e as Error)?.message ?? String(e)}); check the CUDA and cuDNN libraries on this node, or set compute to 'cpu'`,
    );
  }
  const tf = ((mod as { default?: unknown }).default ?? mod) as TfModule;
  if (typeof tf.tensor2d !== 'function' || typeof tf.topk !== 'function') {
    throw new FedmmError('UNAVAILABLE', `${TFJS_NODE_GPU} loaded but does not expose the TensorFlow.js API; reinstall a 4.x release`);
  }
  return createTfjsCompute(tf, 'tfjs-node-gpu');
}
