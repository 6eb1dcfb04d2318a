import { invalidArgument } from '@fedmm/core';

/** The serialized form of a tokenizer, as stored next to a base model. */
export interface TokenizerJson {
  readonly format: 'fedmm.tokenizer';
  readonly version: 1;
  readonly vocabSize: number;
  readonly maxWords: number;
  readonly words: readonly string[];
}

export interface TokenizerOptions {
  /** Total ids, padding included; must equal the text encoder's vocabSize. */
  readonly vocabSize: number;
  /** At most this many frequent words get their own id in `fit`; the rest hash into buckets (default vocabSize / 2). */
  readonly maxWords?: number;
}

const WORD = /[\p{L}\p{N}]+/gu;

/** Lower-cased words of a text, split on anything that is not a letter or digit. */
export function words(text: string): string[] {
  return text.toLowerCase().match(WORD) ?? [];
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A word-level tokenizer with a fixed id space: id 0 is padding, ids 1..W belong to the W most
 * frequent words seen by `fit`, and every other word is hashed (FNV-1a) into the remaining buckets.
 * Without `fit` it is a pure hashing tokenizer, so companies need no shared vocabulary to encode
 * text; a fitted vocabulary travels with the base model it was fitted for.
 */
export class Tokenizer {
  readonly vocabSize: number;
  readonly maxWords: number;
  #words: string[] = [];
  #index = new Map<string, number>();

  constructor(options: TokenizerOptions) {
    if (!Number.isInteger(options.vocabSize) || options.vocabSize < 16) {
      throw invalidArgument(`tokenizer: vocabSize must be an integer >= 16, got ${options.vocabSize}`);
    }
    this.vocabSize = options.vocabSize;
    this.maxWords = options.maxWords ?? Math.floor(options.vocabSize / 2);
    if (!Number.isInteger(this.maxWords) || this.maxWords < 0 || this.maxWords > this.vocabSize - 2) {
      throw invalidArgument(
        `tokenizer: maxWords must be an integer in [0, vocabSize - 2] so at least one hash bucket remains, got ${this.maxWords}`,
      );
    }
  }

  /** The learned words, in id order (word i has id i + 1). */
  get vocabulary(): readonly string[] {
    return this.#words;
  }

  /** Learns the most frequent words of the texts (ties broken alphabetically); replaces any earlier fit. */
  fit(texts: Iterable<string>): this {
    const counts = new Map<string, number>();
    for (const t of texts) for (const w of words(t)) counts.set(w, (counts.get(w) ?? 0) + 1);
    const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    this.#setWords(ranked.slice(0, this.maxWords).map(([w]) => w));
    return this;
  }

  /** The id of one (already lower-cased) word. */
  idOf(word: string): number {
    const known = this.#index.get(word);
    if (known !== undefined) return known;
    const first = 1 + this.#words.length;
    return first + (fnv1a(word) % (this.vocabSize - first));
  }

  /** Encodes a text into exactly maxLen ids: truncated, then padded with 0. */
  encode(text: string, maxLen: number): Int32Array {
    if (!Number.isInteger(maxLen) || maxLen <= 0) {
      throw invalidArgument(`tokenizer: maxLen must be a positive integer, got ${maxLen}`);
    }
    const out = new Int32Array(maxLen);
    const ws = words(text);
    const n = Math.min(ws.length, maxLen);
    for (let i = 0; i < n; i++) out[i] = this.idOf(ws[i]!);
    return out;
  }

  /** The JSON form (vocabulary size and learned words). */
  toJSON(): TokenizerJson {
    return { format: 'fedmm.tokenizer', version: 1, vocabSize: this.vocabSize, maxWords: this.maxWords, words: [...this.#words] };
  }

  /** A string that `Tokenizer.load` turns back into an equal tokenizer. */
  serialize(): string {
    return JSON.stringify(this.toJSON());
  }

  /** Restores a tokenizer from `serialize()` output or its parsed JSON. */
  static load(source: string | TokenizerJson): Tokenizer {
    let json: unknown;
    try {
      json = typeof source === 'string' ? JSON.parse(source) : source;
    } catch (e) {
      throw invalidArgument(`tokenizer: serialized form is not JSON (${(e as Error).message}); pass Tokenizer.serialize() output`);
    }
    const j = json as Partial<TokenizerJson>;
    if (j.format !== 'fedmm.tokenizer' || j.version !== 1 || typeof j.vocabSize !== 'number' || typeof j.maxWords !== 'number' || !Array.isArray(j.words)) {
      throw invalidArgument('tokenizer: not a fedmm.tokenizer v1 document; pass Tokenizer.serialize() output');
    }
    const t = new Tokenizer({ vocabSize: j.vocabSize, maxWords: j.maxWords });
    if (j.words.some((w) => typeof w !== 'string')) throw invalidArgument('tokenizer: words must all be strings');
    t.#setWords([...j.words]);
    return t;
  }

  #setWords(ws: string[]): void {
    if (ws.length > this.vocabSize - 2) {
      throw invalidArgument(`tokenizer: ${ws.length} words leave no hash bucket in a vocabulary of ${this.vocabSize}`);
    }
    this.#words = ws;
    this.#index = new Map(ws.map((w, i) => [w, i + 1]));
  }
}
