/**
 * Media items as the framework sees them, checked in one place for every fusion strategy:
 *
 * - before packing (plain JS), `itemSize` asks the plugin how many positions an item occupies (`tokensFor`) and
 *   refuses what cannot be an item: a raw input passed as `item`, an empty item;
 * - inside the batch, `encodeItems` runs the plugin's encoder and checks its output item by item: one feature
 *   run per item, `featureDim` wide, as long as `tokensFor` says.
 *
 * Messages name the item as the caller gave it to compose's model (`sample 0, part 1`, `sample 2, media item 0`),
 * never packer internals. Strategies reach `encodeItems` through `ContributionInput.encode`.
 *
 * Per-item lists: modalities return features as one [N_i, D] tensor per item or one [items, N, D] tensor;
 * strategies work per item. Unstacking goes through `itemList`, where one item is a reshape rather than an Unpack
 * (whose tfjs gradient breaks for a single output unless core's split-gradient fast path is installed).
 */
import * as tf from '@tensorflow/tfjs';
import { requirePath, type EncodeOptions, type EncodedFeatures, type ItemFeatures, type Modality } from '@chimera/core';

/** [items, N, D] (or a list) -> one [N, D] tensor per item; gradients flow back to the input. */
export function itemList(features: ItemFeatures): tf.Tensor[] {
  if (Array.isArray(features)) return features;
  if (features.shape[0] === 1) return [tf.reshape(features, features.shape.slice(1))];
  return tf.unstack(features);
}

/** An item with how the caller gave it (`sample 0, part 1`), for messages. */
export interface LabelledItem {
  item: unknown;
  where: string;
}

/**
 * The positions an item occupies by its plugin's `tokensFor` (on the plugin's default path): a whole number >= 1,
 * or an error naming the item that says what it got and what to do.
 */
export function itemSize(name: string, modality: Modality<any, any, any>, { item, where }: LabelledItem): number {
  const rawHint =
    `Was a raw input passed as item? Give raw inputs as { modality: '${name}', raw } (the model prepares them), or ` +
    `prepare them with the '${name}' plugin composed into this model: { modality: '${name}', item: plugin.prepare(raw) }.`;
  let size: unknown;
  try {
    size = modality.tokensFor(item);
  } catch (error) {
    throw new Error(`${where}: the '${name}' plugin cannot size this item: its tokensFor threw "${(error as Error).message}". ${rawHint}`, {
      cause: error,
    });
  }
  if (size === 0) {
    throw new Error(
      `${where}: this '${name}' item is empty: ${name}.tokensFor(item) gives 0 positions, so there is nothing to encode. ` +
        'Leave the item out, or give it content.',
    );
  }
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 1) {
    throw new Error(`${where}: this '${name}' item occupies ${String(size)} positions by ${name}.tokensFor(item), where a whole number >= 1 is expected. ${rawHint}`);
  }
  return size;
}

/**
 * Runs the plugin's encoder (`continuousIn.encode`) on the items and checks its output: features for every
 * item, each [N, featureDim] with N = `tokensFor(item, 'continuousIn')`. Returns the plugin's result unchanged
 * (a batched [items, N, D] tensor stays batched). Call inside a tf scope: on error the tensors are the scope's.
 */
export function encodeItems(
  name: string,
  modality: Modality<any, any, any>,
  items: readonly LabelledItem[],
  options?: EncodeOptions,
): EncodedFeatures {
  const input = requirePath(modality, 'continuousIn');
  const encoded = input.encode(
    items.map((i) => i.item),
    options,
  ) as EncodedFeatures | undefined;
  const features = encoded?.features;
  const expected = `one [N, ${input.featureDim}] tensor per item or one [items, N, ${input.featureDim}] tensor`;
  const shapes: number[][] = Array.isArray(features)
    ? features.map((f) => (f instanceof tf.Tensor ? f.shape : []))
    : features instanceof tf.Tensor && features.rank === 3
      ? Array.from({ length: features.shape[0]! }, () => features.shape.slice(1))
      : [];
  if (!(Array.isArray(features) || (features instanceof tf.Tensor && features.rank === 3))) {
    const got = features instanceof tf.Tensor ? `a tensor of shape [${features.shape}]` : String(features);
    throw new Error(`the '${name}' plugin's encode returned features ${got} for ${items.length} item(s); it must return ${expected}`);
  }
  if (shapes.length !== items.length) {
    throw new Error(
      `the '${name}' plugin's encode returned features for ${shapes.length} item(s) but was given ${items.length} ` +
        `(${items.map((i) => i.where).join('; ')}); it must return ${expected}, in the order given`,
    );
  }
  items.forEach(({ item, where }, i) => {
    const shape = shapes[i]!;
    if (shape.length !== 2) {
      throw new Error(`${where}: the '${name}' encoder gave this item features of shape [${shape}], where [N, ${input.featureDim}] is expected`);
    }
    const [count, width] = shape as [number, number];
    if (width !== input.featureDim) {
      throw new Error(
        `${where}: the '${name}' encoder gave this item features of width ${width}, but the plugin declares featureDim ` +
          `${input.featureDim}. A plugin's featureDim must be the width its encode returns; fix the plugin (its featureDim or its encoder).`,
      );
    }
    const size = modality.tokensFor(item, 'continuousIn');
    if (count !== size) {
      throw new Error(
        `${where}: the '${name}' encoder gave this item ${count} features, but ${name}.tokensFor(item) says ${size}. Either ` +
          `the item was prepared with other settings than this plugin's (prepare it with the '${name}' plugin composed ` +
          'into the model), or the plugin\'s tokensFor and encode disagree (fix the plugin).',
      );
    }
  });
  return encoded!;
}
