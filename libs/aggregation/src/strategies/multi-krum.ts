import { invalidArgument } from '@fedmm/core';
import { Krum, type KrumOptions } from './krum.js';

/** Options of Multi-Krum: `keep` is required and at least 2. */
export interface MultiKrumOptions extends KrumOptions {
  readonly keep: number;
}

/** Multi-Krum (El Mhamdi et al. 2018): the example-weighted mean of the `keep` best Krum scores. */
export class MultiKrum extends Krum {
  override readonly name = 'multi-krum';

  constructor(options: MultiKrumOptions) {
    if (!(Number.isInteger(options.keep) && options.keep >= 2)) {
      throw invalidArgument(`Multi-Krum keep must be an integer >= 2, got ${options.keep}; use Krum to keep one client`);
    }
    super(options);
  }
}
