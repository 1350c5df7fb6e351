import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { TEST_BACKENDS, setupTestBackend } from '../src/testing/backend';
import { expectNoLeaksSync } from '../src/testing/leaks';
import { gradCheckVariables } from '../src/testing/grad-check';
import { packSequences } from '../src/modality/packer';
import { layoutSequences, type PackOptions } from '../src/modality/layout';
import { spliceEmbeddings } from '../src/modality/splice';
import { attentionBiasValues } from '../src/modality/attention-bias';
import { mediaSegment, type Sample } from '../src/modality/segments';
import { createToyModality, toyRaw, type ToyModality } from './helpers/toy-modality';

const D = 4;
const VOCAB = 12;
const TOY = 11;
const options: PackOptions = { modalities: ['toy'], placeholderIds: { toy: TOY } };

function tableValues(): number[][] {
  return Array.from({ length: VOCAB }, (_, v) => Array.from({ length: D }, (_, d) => Math.sin(v * 7 + d * 3)));
}

describe.each(TEST_BACKENDS)('splicing on %s', (backend) => {
  let toy: ToyModality;
  let table: tf.Variable;
  const embedText = (ids: tf.Tensor2D) => tf.gather(table, ids);

  beforeAll(async () => {
    await setupTestBackend(backend);
    toy = createToyModality({ featureDim: D });
    table = tf.variable(tf.tensor2d(tableValues()), true);
  });

  function samples(): { batch: Sample[]; items: ReturnType<ToyModality['prepare']>[] } {
    const items = [toy.prepare(toyRaw(2, 2, 1)), toy.prepare(toyRaw(1, 3, 2))];
    const batch: Sample[] = [
      [{ text: [1, 2] }, mediaSegment(toy, items[0]!), { text: [3] }],
      [mediaSegment(toy, items[1]!), { text: [4, 5] }],
    ];
    return { batch, items };
  }

  it('puts text rows from the table and media rows from the features', () => {
    const { batch: data, items } = samples();
    expectNoLeaksSync(() => {
      const encoded = toy.continuousIn!.encode(items);
      const batch = packSequences(data, options, { embedText, features: { toy: encoded.features } });
      expect(batch.inputsEmbeds!.shape).toEqual([2, 7, D]);
      const got = batch.inputsEmbeds!.arraySync() as number[][][];
      const feats = (encoded.features as tf.Tensor[]).map((f) => f.arraySync() as number[][]);
      const t = tableValues();
      const expected = [
        [t[1], t[2], ...feats[0]!, t[3]],
        [...feats[1]!, t[4], t[5], t[0], t[0]],
      ];
      got.forEach((row, b) => row.forEach((vec, i) => vec.forEach((v, d) => expect(v).toBeCloseTo(expected[b]![i]![d]!, 5))));
      batch.dispose();
      tf.dispose(encoded.features);
    });
  });

  it('accepts batched [items, N, D] features and pre-expanded placeholders', () => {
    const items = [toy.prepare(toyRaw(1, 3, 3)), toy.prepare(toyRaw(1, 3, 4))];
    const data: Sample[] = [
      { ids: [1, TOY, TOY, TOY, 2], media: [{ modality: 'toy' }] },
      { ids: [TOY, TOY, TOY, 3], media: [{ modality: 'toy', tokens: 3 }] },
    ];
    expectNoLeaksSync(() => {
      const stacked = tf.tidy(() => tf.stack(toy.continuousIn!.encode(items).features as tf.Tensor[]));
      const batch = packSequences(data, options, { embedText, features: { toy: stacked } });
      const got = batch.inputsEmbeds!.arraySync() as number[][][];
      const feats = stacked.arraySync() as number[][][];
      expect(got[0]![1]).toEqual(feats[0]![0]);
      expect(got[0]![3]).toEqual(feats[0]![2]);
      expect(got[1]![2]).toEqual(feats[1]![2]);
      batch.dispose();
      stacked.dispose();
    });
  });

  it('sends gradients to the media features and the text embedding table', () => {
    const { batch: data } = samples();
    const layout = layoutSequences(data, options);
    const weights = Array.from({ length: 2 * 7 * D }, (_, i) => Math.cos(i * 0.7));
    const featureValues = [
      Array.from({ length: 4 * D }, (_, i) => i / 10),
      Array.from({ length: 3 * D }, (_, i) => -i / 10),
    ];
    expectNoLeaksSync(() => {
      const f0 = tf.tensor2d(featureValues[0]!, [4, D]);
      const f1 = tf.tensor2d(featureValues[1]!, [3, D]);
      const w = tf.tensor3d(weights, [2, 7, D]);
      const loss = (a: tf.Tensor, b: tf.Tensor, tbl: tf.Tensor) =>
        tf.sum(tf.mul(spliceEmbeddings(layout, { embedText: (ids) => tf.gather(tbl, ids), features: { toy: [a, b] } }), w));
      const [g0, g1, gTable] = tf.grads(loss)([f0, f1, table]);
      // d loss / d feature row n of an item = the weight row at the item's n-th position.
      const W = (b: number, t: number) => weights.slice((b * 7 + t) * D, (b * 7 + t + 1) * D);
      expect(Array.from(g0!.dataSync())).toEqual(Array.from(Float32Array.from([2, 3, 4, 5].flatMap((t) => W(0, t)))));
      expect(Array.from(g1!.dataSync())).toEqual(Array.from(Float32Array.from([0, 1, 2].flatMap((t) => W(1, t)))));
      // d loss / d table[v] = sum of weight rows at text (and padding) positions holding id v; never at media.
      const expectedTable = Array.from({ length: VOCAB }, () => new Array<number>(D).fill(0));
      const ids = [[1, 2, -1, -1, -1, -1, 3], [-1, -1, -1, 4, 5, 0, 0]];
      ids.forEach((row, b) => row.forEach((v, t) => v >= 0 && W(b, t).forEach((x, d) => (expectedTable[v]![d]! += x))));
      const gotTable = gTable!.arraySync() as number[][];
      gotTable.forEach((r, v) => r.forEach((x, d) => expect(x).toBeCloseTo(expectedTable[v]![d]!, 5)));
      expect(gotTable[TOY]).toEqual([0, 0, 0, 0]);
      tf.dispose([f0, f1, w, g0!, g1!, gTable!]);
    });
  });

  it('reaches the encoder parameters through encode (finite differences)', () => {
    const { batch: data, items } = samples();
    const layout = layoutSequences(data, options);
    const w = tf.tensor3d(Array.from({ length: 2 * 7 * D }, (_, i) => Math.sin(i)), [2, 7, D]);
    const f = () =>
      tf.tidy(() => {
        const encoded = toy.continuousIn!.encode(items);
        const embeds = spliceEmbeddings(layout, { embedText, features: { toy: encoded.features } });
        return tf.sum(tf.mul(tf.square(embeds), w)) as tf.Scalar;
      });
    const report = gradCheckVariables(f, [toy.encoder.weight, toy.encoder.bias!]);
    expect(report.checked).toBeGreaterThan(0);
    w.dispose();
  });

  it('names the item and both counts when features and placeholders disagree', () => {
    const items = [toy.prepare(toyRaw(1, 2, 5)), toy.prepare(toyRaw(2, 2, 6)), toy.prepare(toyRaw(2, 3, 7))];
    // The third item's placeholders were expanded for a different size (8) than the encoder gives (6).
    const data: Sample[] = [
      { ids: [1, TOY, 2], media: [mediaSegment(toy, items[0]!)] },
      { ids: [TOY, TOY, TOY, TOY, 3, ...new Array(8).fill(TOY)], media: [{ modality: 'toy' }, { modality: 'toy' }] },
    ];
    expectNoLeaksSync(() => {
      const encoded = toy.continuousIn!.encode(items);
      expect(() => packSequences(data, options, { embedText, features: { toy: encoded.features } })).toThrow(
        'toy 2 produced 6 features but the sequence has 8 <toy> placeholders (row 1, position 5)',
      );
      tf.dispose(encoded.features);
    });
  });

  it('fails clearly on wrong widths, counts and missing inputs, without leaking', () => {
    const { batch: data, items } = samples();
    expectNoLeaksSync(() => {
      const wide = createToyModality({ featureDim: D + 2 });
      const encoded = wide.continuousIn!.encode(items);
      expect(() => packSequences(data, options, { embedText, features: { toy: encoded.features } })).toThrow(
        'toy 0 features have width 6 but the text embeddings have width 4; project them to 4 first',
      );
      const one = (encoded.features as tf.Tensor[]).slice(0, 1);
      expect(() => packSequences(data, options, { embedText, features: { toy: one } })).toThrow(
        /the batch has 2 toy 'features' item\(s\) but inputs.features.toy holds 1/,
      );
      expect(() => packSequences(data, options, { embedText })).toThrow(/inputs.features.toy is missing; encode them/);
      expect(() => packSequences(data, options, { embedText: (ids) => tf.gather(table, tf.reshape(ids, [-1])) })).toThrow(
        /embedText must map ids \[2, 7\] to \[2, 7, D\]/,
      );
      tf.dispose(encoded.features);
      wide.module.dispose();
    });
  });

  it('embeds own-vocabulary codes (Janus) and unified codes (Chameleon), with gradients to the codebook', () => {
    const item = toy.prepare(toyRaw(2, 2, 8));
    const codes = Array.from(toy.discrete!.tokenize([item]).dataSync()) as number[];
    const data: Sample[] = [[{ text: [1] }, { modality: 'toy', kind: 'codes', codes }, { text: [2] }]];
    expectNoLeaksSync(() => {
      const batch = packSequences(data, options, { embedText, embedCodes: { toy: (ids) => toy.discrete!.lookup(ids) } });
      const got = batch.inputsEmbeds!.arraySync() as number[][][];
      const book = toy.codebook.weight.arraySync() as number[][];
      codes.forEach((c, i) => expect(got[0]![1 + i]).toEqual(book[c]));
      expect(got[0]![0]).toEqual(tableValues()[1]!.map((x) => Math.fround(x)));
      batch.dispose();

      const { grads, value } = tf.variableGrads(() => {
        const b = packSequences(data, options, { embedText, embedCodes: { toy: (ids) => toy.discrete!.lookup(ids) } });
        return tf.sum(b.inputsEmbeds!) as tf.Scalar;
      }, [toy.codebook.weight]);
      const g = grads[toy.codebook.weight.name]!.arraySync() as number[][];
      g.forEach((rowGrad, c) => rowGrad.forEach((x) => expect(x).toBe(codes.filter((k) => k === c).length)));
      tf.dispose([value, ...Object.values(grads)]);

      const unified = packSequences(data, { ...options, unifiedVocab: { toy: 4 } }, {
        embedText,
      });
      expect(unified.layout.sources).toEqual([]);
      expect((unified.inputIds.arraySync() as number[][])[0]).toEqual([1, ...codes.map((c) => 4 + c), 2]);
      unified.dispose();
      expect(() => packSequences(data, options, { embedText })).toThrow(/inputs.embedCodes.toy is missing/);
    });
  });

  it('splices embedded diffusion latents (Transfusion)', () => {
    const data: Sample[] = [[{ text: [1] }, { modality: 'toy', kind: 'latents', tokens: 2 }]];
    expectNoLeaksSync(() => {
      const latents = tf.tensor2d([[1, 2, 3, 4], [5, 6, 7, 8]]);
      const batch = packSequences(data, options, { embedText, latents: { toy: [latents] } });
      expect((batch.inputsEmbeds!.arraySync() as number[][][])[0]!.slice(1)).toEqual([[1, 2, 3, 4], [5, 6, 7, 8]]);
      expect(Array.from(batch.targets.latents.toy!.index.dataSync())).toEqual([1, 2]);
      batch.dispose();
      const tooMany = tf.zeros([3, D]);
      expect(() => packSequences(data, options, { embedText, latents: { toy: [tooMany] } })).toThrow(
        /toy 0 produced 3 latent rows but the sequence has 2 <toy> placeholders/,
      );
      tf.dispose([latents, tooMany]);
    });
  });

  it('gives the batch tensors that match the layout and frees them all', () => {
    const { batch: data } = samples();
    expectNoLeaksSync(() => {
      const batch = packSequences(data, { ...options, positions: 'mrope', prefixLM: true });
      const layout = batch.layout;
      expect(batch.inputsEmbeds).toBeNull();
      expect(batch.inputIds.dtype).toBe('int32');
      expect(Array.from(batch.inputIds.dataSync())).toEqual(Array.from(layout.inputIds));
      expect(batch.tokenModality.dtype).toBe('int32');
      expect(Array.from(batch.tokenModality.dataSync())).toEqual(Array.from(layout.tokenModality));
      expect(batch.positions.shape).toEqual([3, 2, 7]);
      expect(Array.from(batch.positions.dataSync())).toEqual(Array.from(layout.positions));
      expect(batch.attentionBias.shape).toEqual([2, 1, 7, 7]);
      expect(batch.attentionBias.dtype).toBe('float32');
      expect(Array.from(batch.attentionBias.dataSync())).toEqual(Array.from(attentionBiasValues(layout)));
      expect(Array.from(batch.paddingMask.dataSync())).toEqual(Array.from(layout.paddingMask));
      expect(Array.from(batch.mediaLocations.dataSync())).toEqual(Array.from(layout.mediaLocations));
      expect(Array.from(batch.targets.text.ids.dataSync())).toEqual(Array.from(layout.targets.text.ids));
      expect(Array.from(batch.targets.text.mask.dataSync())).toEqual(Array.from(layout.targets.text.mask));
      expect(batch.modalityNames).toEqual(['toy']);
      expect(batch.nextPositions).toEqual([5, 5]);
      batch.dispose();
      expect(batch.isDisposed).toBe(true);
      batch.dispose();
    });
  });
});
