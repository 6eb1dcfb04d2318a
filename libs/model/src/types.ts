/** The input modalities of the reference model. */
export type Modality = 'image' | 'text' | 'sensor';
/** Modules that every company trains, whatever modalities it holds (fusion and head). */
export type ModuleGroup = Modality | 'shared';

export const MODALITIES: readonly Modality[] = Object.freeze(['image', 'text', 'sensor']);

/** A named dense tensor as it is stored and sent: row-major float32 data and its shape. */
export interface NamedTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** A map of tensor name to tensor, in a stable order (see each producer for the order). */
export type TensorMap = Map<string, NamedTensor>;

/**
 * One labelled example. Every field but `label` is optional; a sample needs at least one modality.
 * - `image`: IMAGE_SIZE x IMAGE_SIZE x 3 floats, row-major HWC, values normalised (e.g. to [0, 1]).
 * - `tokens`: token ids from this library's `Tokenizer`, 0 is padding; all-padding counts as absent.
 * - `sensor`: SENSOR_CHANNELS x SENSOR_STEPS floats, channel-major (`c * SENSOR_STEPS + t`).
 */
export interface Sample {
  readonly image?: Float32Array;
  readonly tokens?: Int32Array;
  readonly sensor?: Float32Array;
  readonly label: number;
}
