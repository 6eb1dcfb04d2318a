import { FedmmError } from '@fedmm/core';
import type { BaseModel } from '@fedmm/model';
import { MAX_TOKENS, toModelSamples } from '@fedmm/agent';

/**
 * What a registered model's `config_json` holds: everything a company agent needs to turn its
 * local dataset into model inputs the same way the base was pretrained (class order, token length,
 * tokenizer) and the LoRA shape of the adapters it trains. The base artifact itself carries the
 * architecture and tokenizer in its safetensors metadata too (saveBase), so both agree.
 */
export interface ModelCard {
  readonly format: 'fedmm.model-card';
  readonly version: 1;
  readonly classes: readonly string[];
  /** Tokens per text: texts are truncated and padded to this length before the bag of words. */
  readonly maxTokens: number;
  readonly lora: { readonly rank: number; readonly alpha: number };
  /** The compiled model configuration (dims, vocabulary size, classes). */
  readonly model: BaseModel['config'];
  /** Serialized tokenizer (Tokenizer.serialize()). */
  readonly tokenizer: string;
  /** Where the base came from: dataset, seed, epochs, accuracy on the public split. */
  readonly pretraining?: Readonly<Record<string, string | number>>;
}

/** Token length of a text: the agent's, so the operator's evaluation encodes texts as the companies do. */
export const DEFAULT_MAX_TOKENS = MAX_TOKENS;

export { toModelSamples };

/** Builds the model card of a base model. */
export function modelCardOf(base: BaseModel, classes: readonly string[], lora: { rank: number; alpha: number }, maxTokens = DEFAULT_MAX_TOKENS, pretraining?: Record<string, string | number>): ModelCard {
  return {
    format: 'fedmm.model-card',
    version: 1,
    classes: [...classes],
    maxTokens,
    lora: { ...lora },
    model: base.config,
    tokenizer: base.tokenizer.serialize(),
    ...(pretraining ? { pretraining } : {}),
  };
}

/** Parses a model's config_json; a model without a card (imported elsewhere) is refused with what to do. */
export function parseModelCard(json: string, modelId: string): ModelCard {
  let doc: Partial<ModelCard>;
  try {
    doc = JSON.parse(json) as Partial<ModelCard>;
  } catch (e) {
    throw new FedmmError('FAILED_PRECONDITION', `model ${modelId}: config_json is not JSON (${(e as Error).message}); register the model with fedmm model pretrain`);
  }
  if (doc.format !== 'fedmm.model-card' || doc.version !== 1 || !Array.isArray(doc.classes) || typeof doc.tokenizer !== 'string' || !doc.lora || !doc.model) {
    throw new FedmmError('FAILED_PRECONDITION', `model ${modelId}: config_json is not a fedmm model card (format fedmm.model-card, version 1); register the model with fedmm model pretrain`);
  }
  return doc as ModelCard;
}

