/**
 * The packer: a batch of interleaved samples (text runs and media items) becomes a SequenceBatch. The layout
 * is computed in plain JS (layout.ts); then the batch's tensors are made and, when splice inputs are given,
 * media features are spliced into the text embeddings (splice.ts).
 */
import { layoutSequences, type PackOptions } from './layout';
import type { Sample } from './segments';
import { SequenceBatch } from './sequence-batch';
import { spliceEmbeddings, type SpliceInputs } from './splice';

/**
 * Packs `samples` into one SequenceBatch (the caller disposes it). With `splice`, `inputsEmbeds` is filled;
 * call this inside the function you differentiate so gradients reach the features and embedding table.
 */
export function packSequences(samples: readonly Sample[], options: PackOptions, splice?: SpliceInputs): SequenceBatch {
  const layout = layoutSequences(samples, options);
  const embeds = splice ? spliceEmbeddings(layout, splice) : null;
  try {
    return new SequenceBatch(layout, embeds);
  } catch (err) {
    embeds?.dispose();
    throw err;
  }
}
