/**
 * Splices media rows into the text embeddings of a packed batch (LLaVA-style early fusion): inputsEmbeds
 * takes text rows from a caller-supplied embedding function and media rows from the encoded features, code
 * embeddings or latents. Media rows are gathered from their concatenation plus one zero row and selected
 * with tf.where, so gradients reach both the features and the text embedding table.
 */
import * as tf from '@tensorflow/tfjs';
import type { ItemFeatures } from './contract';
import type { SequenceLayout, SpliceSource } from './layout';

/** Inputs of {@link spliceEmbeddings}: how to embed text, and the media tensors to splice in. */
export interface SpliceInputs {
  /** ids int32 [B, T] -> [B, T, D], e.g. the LLM's embedding table. Placeholder rows are discarded. */
  embedText: (ids: tf.Tensor2D) => tf.Tensor;
  /** Per modality, features of its `features` items in batch order: [N_i, D] each, or [items, N, D]. */
  features?: Readonly<Record<string, ItemFeatures>>;
  /** Per modality, embedded latents of its `latents` items in batch order, same layouts. */
  latents?: Readonly<Record<string, ItemFeatures>>;
  /** Per modality with its own code embedding (not in the text vocabulary): ids int32 [K] -> [K, D]. */
  embedCodes?: Readonly<Record<string, (ids: tf.Tensor1D) => tf.Tensor>>;
}

/** inputsEmbeds [B, T, D]; the caller owns the result. */
export function spliceEmbeddings(layout: SequenceLayout, inputs: SpliceInputs): tf.Tensor3D {
  const { batchSize: B, length: T } = layout;
  return tf.tidy(() => {
    const ids = tf.tensor2d(layout.inputIds, [B, T], 'int32');
    const text = inputs.embedText(ids);
    if (text.rank !== 3 || text.shape[0] !== B || text.shape[1] !== T) {
      throw new Error(`embedText must map ids [${B}, ${T}] to [${B}, ${T}, D], got [${text.shape}]`);
    }
    const D = text.shape[2]!;
    if (layout.sources.length === 0) return text as tf.Tensor3D;
    const tables = layout.sources.map((source) => sourceRows(source, inputs, D));
    const offsets: number[] = [];
    let total = 0;
    for (const source of layout.sources) {
      offsets.push(total);
      total += source.rows;
    }
    const table = tf.concat([...tables, tf.zeros([1, D], text.dtype)], 0); // [total + 1, D]
    const index = new Int32Array(B * T);
    for (let p = 0; p < B * T; p++) {
      const s = layout.spliceSource[p]!;
      index[p] = s < 0 ? total : offsets[s]! + layout.spliceRow[p]!;
    }
    const media = tf.reshape(tf.gather(table, tf.tensor1d(index, 'int32')), [B, T, D]);
    const isMedia = tf.tensor3d(
      Uint8Array.from(layout.textVocab, (v) => 1 - v),
      [B, T, 1],
      'bool',
    );
    return tf.where(tf.broadcastTo(isMedia, [B, T, D]), media, text) as tf.Tensor3D;
  });
}

/** One source's rows [rows, D], checked item by item against the positions the layout gave them. */
function sourceRows(source: SpliceSource, inputs: SpliceInputs, D: number): tf.Tensor {
  const { modality, kind, items } = source;
  if (kind === 'codes') {
    const embed = inputs.embedCodes?.[modality];
    if (!embed) {
      throw new Error(
        `the batch has ${items.length} ${modality} 'codes' item(s) outside the text vocabulary but inputs.embedCodes.${modality} ` +
          `is missing; pass the code embedding (e.g. Modality.discrete.lookup) or set unifiedVocab.${modality}`,
      );
    }
    const codes = Int32Array.from(items.flatMap((item) => item.codes ?? []));
    const rows = embed(tf.tensor1d(codes, 'int32'));
    if (rows.rank !== 2 || rows.shape[0] !== source.rows || rows.shape[1] !== D) {
      throw new Error(
        `embedCodes.${modality} must map ${source.rows} ids to [${source.rows}, ${D}] (the text width), got [${rows.shape}]`,
      );
    }
    return rows;
  }
  const given = (kind === 'features' ? inputs.features : inputs.latents)?.[modality];
  const field = kind === 'features' ? 'features' : 'latents';
  const noun = kind === 'features' ? 'features' : 'latent rows';
  if (given === undefined) {
    throw new Error(
      `the batch has ${items.length} ${modality} '${kind}' item(s) but inputs.${field}.${modality} is missing; ` +
        (kind === 'features' ? 'encode them (Modality.continuousIn.encode) and pass them' : 'embed the latents and pass them'),
    );
  }
  const counts: number[] = [];
  const widths: number[] = [];
  if (Array.isArray(given)) {
    given.forEach((f, i) => {
      if (f.rank !== 2) {
        throw new Error(`inputs.${field}.${modality}[${i}] must be [N, D], got [${f.shape}]; pass one 2-D tensor per item or one [items, N, D]`);
      }
      counts.push(f.shape[0]!);
      widths.push(f.shape[1]!);
    });
  } else {
    if (given.rank !== 3) {
      throw new Error(`inputs.${field}.${modality} must be [items, N, D] or a list of [N, D], got [${given.shape}]`);
    }
    for (let i = 0; i < given.shape[0]!; i++) {
      counts.push(given.shape[1]!);
      widths.push(given.shape[2]!);
    }
  }
  if (counts.length !== items.length) {
    throw new Error(
      `the batch has ${items.length} ${modality} '${kind}' item(s) but inputs.${field}.${modality} holds ${counts.length}; ` +
        'give one per item, in batch order (row by row, left to right)',
    );
  }
  const wrongWidth = widths.findIndex((w) => w !== D);
  if (wrongWidth >= 0) {
    throw new Error(
      `${modality} ${wrongWidth} ${noun} have width ${widths[wrongWidth]} but the text embeddings have width ${D}; ` +
        `project them to ${D} first (a projector)`,
    );
  }
  items.forEach((item, i) => {
    if (counts[i] !== item.length) {
      throw new Error(
        `${modality} ${item.sourceIndex} produced ${counts[i]} ${noun} but the sequence has ${item.length} <${modality}> ` +
          `placeholders (row ${item.row}, position ${item.start}); make the item's tokens match the ` +
          `${kind === 'features' ? 'encoder (Modality.tokensFor)' : 'latent shape'} or change the input size`,
      );
    }
  });
  return Array.isArray(given) ? tf.concat(given, 0) : tf.reshape(given, [-1, D]);
}
