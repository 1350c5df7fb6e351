// Incremental detokenization for streaming generation: feed ids one at a time, get only newly completed text.
// Decodes a short window of recent ids and emits the growth once it no longer ends in an unfinished character
// (the prefix/read-offset scheme of HF text-generation-inference), so a multi-byte character split over several
// tokens is emitted whole, and decoders that depend on the previous token (leading spaces) stay right.
import type { DecodeOptions, TextTokenizer } from './tokenizer';

const REPLACEMENT_CHARACTER = '\uFFFD';

/**
 * Incremental detokenization for streaming: feed ids one at a time and get only newly completed text. A multi-byte
 * character split over several tokens is emitted whole.
 */
export class StreamDecoder {
  private readonly tokenizer: Pick<TextTokenizer, 'decode'>;
  private readonly options: DecodeOptions;
  /** Ids from the start of the context window on; window[0..readOffset) is already emitted. */
  private window: number[] = [];
  private readOffset = 0;

  constructor(tokenizer: Pick<TextTokenizer, 'decode'>, options: DecodeOptions = {}) {
    this.tokenizer = tokenizer;
    this.options = options;
  }

  /** Adds one id; returns the text it completes ('' while a character is still unfinished). */
  push(id: number): string {
    this.window.push(id);
    const emitted = this.tokenizer.decode(this.window.slice(0, this.readOffset), this.options);
    const extended = this.tokenizer.decode(this.window, this.options);
    if (extended.length <= emitted.length || extended.endsWith(REPLACEMENT_CHARACTER)) return '';
    // Keep the last emitted ids as context for the next decode and drop the older ones.
    this.window = this.window.slice(this.readOffset);
    this.readOffset = this.window.length;
    return extended.slice(emitted.length);
  }

  /** Adds several ids; returns the text they complete. */
  pushAll(ids: Iterable<number>): string {
    let text = '';
    for (const id of ids) text += this.push(id);
    return text;
  }

  /** Returns whatever is still held back (an unfinished character decodes to U+FFFD) and starts over. */
  flush(): string {
    const emitted = this.tokenizer.decode(this.window.slice(0, this.readOffset), this.options);
    const extended = this.tokenizer.decode(this.window, this.options);
    this.reset();
    return extended.length > emitted.length ? extended.slice(emitted.length) : '';
  }

  /** Forgets all ids, e.g. before the next sequence. */
  reset(): void {
    this.window = [];
    this.readOffset = 0;
  }
}
