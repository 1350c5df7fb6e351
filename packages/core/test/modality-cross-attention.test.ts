import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs';
import { TEST_BACKENDS, setupTestBackend } from '../src/testing/backend';
import { expectNoLeaksSync } from '../src/testing/leaks';
import { layoutSequences, type PackOptions } from '../src/modality/layout';
import { crossAttentionLayout, gatherMediaSlots } from '../src/modality/cross-attention-mask';
import { MASKED_BIAS } from '../src/modality/attention-bias';
import { packSequences } from '../src/modality/packer';
import type { Segment } from '../src/modality/segments';

const M_ = MASKED_BIAS;
const options: PackOptions = { modalities: ['toy', 'aud'] };
const cross = (marker: number[] = [50]): Segment => ({ modality: 'toy', kind: 'cross', marker });

// row 0: 1 <m> 2 3 <m> 4 ; row 1: 5 6 [item, no marker] 7 (then padding)
const rows: Segment[][] = [
  [{ text: [1] }, cross(), { text: [2, 3] }, cross(), { text: [4] }],
  [{ text: [5, 6] }, cross([]), { text: [7] }],
];

describe('Flamingo cross-attention masks', () => {
  it('lets each text position see only the latest item; text before any item sees none', () => {
    const layout = layoutSequences(rows, options);
    const mask = crossAttentionLayout(layout, { tokensPerItem: 2 });
    expect(mask.maxItems).toBe(2);
    // Keys: slot 0 = [0, 1], slot 1 = [2, 3].
    const none = [M_, M_, M_, M_];
    const first = [0, 0, M_, M_];
    const second = [M_, M_, 0, 0];
    expect(Array.from(mask.bias)).toEqual([
      ...none, ...first, ...first, ...first, ...second, ...second,
      ...none, ...none, ...first, ...none, ...none, ...none,
    ]);
    expect(Array.from(mask.hasMedia)).toEqual([0, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0]);
    expect(mask.slots[1]![1]).toBeNull();
    expect(mask.selected.map((m) => [m.row, m.start])).toEqual([[0, 1], [0, 4], [1, 2]]);
  });

  it('lets each text position see every previous item in `all` mode', () => {
    const layout = layoutSequences(rows, options);
    const mask = crossAttentionLayout(layout, { tokensPerItem: 1, mode: 'all', maxItems: 3 });
    const row0 = Array.from(mask.bias.slice(0, 6 * 3));
    expect(row0).toEqual([M_, M_, M_, 0, M_, M_, 0, M_, M_, 0, M_, M_, 0, 0, M_, 0, 0, M_]);
  });

  it('keeps left padding rows empty and works on the padded coordinates', () => {
    const layout = layoutSequences(rows, { ...options, padding: 'left' });
    const mask = crossAttentionLayout(layout, { tokensPerItem: 1 });
    expect(Array.from(mask.hasMedia.slice(6))).toEqual([0, 0, 0, 0, 0, 1]);
  });

  it('picks cross items when a modality also has spliced ones (NVLM-H), and asks which modality when ambiguous', () => {
    const hybrid: Segment[] = [{ modality: 'toy', tokens: 2 }, { text: [1] }, cross([]), { text: [2] }];
    const layout = layoutSequences([hybrid], options);
    const mask = crossAttentionLayout(layout, { tokensPerItem: 1 });
    expect(mask.selected.map((m) => m.kind)).toEqual(['cross']);
    expect(Array.from(mask.hasMedia)).toEqual([0, 0, 0, 1]);
    const all = crossAttentionLayout(layout, { tokensPerItem: 1, kinds: ['features', 'cross'], mode: 'all' });
    expect(Array.from(all.hasMedia)).toEqual([1, 1, 1, 1]);

    const mixed = layoutSequences([[cross(), { modality: 'aud', kind: 'cross', marker: [51] }, { text: [3] }]], options);
    expect(() => crossAttentionLayout(mixed, { tokensPerItem: 1 })).toThrow(/items of toy, aud; pass options.modality/);
    expect(Array.from(crossAttentionLayout(mixed, { tokensPerItem: 1, modality: 'aud' }).hasMedia)).toEqual([0, 1, 1]);
    expect(() => crossAttentionLayout(layoutSequences(rows, options), { tokensPerItem: 1, maxItems: 1 })).toThrow(
      /row 0 has 2 items but maxItems is 1/,
    );
  });

  it('matches an oracle written from the segments, over random rows', () => {
    const segmentArb = fc.oneof(
      fc.record({ text: fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 3 }) }),
      fc.record({ modality: fc.constant('toy'), kind: fc.constant('cross' as const), marker: fc.array(fc.constant(50), { maxLength: 1 }) }),
    ) as fc.Arbitrary<Segment>;
    const batchArb = fc.array(fc.array(segmentArb, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 3 });
    fc.assert(
      fc.property(batchArb, fc.constantFrom('latest' as const, 'all' as const), fc.boolean(), (samples, mode, left) => {
        const layout = layoutSequences(samples, { ...options, padding: left ? 'left' : 'right' });
        const N = 2;
        if (!layout.media.length) return;
        const mask = crossAttentionLayout(layout, { tokensPerItem: N, mode });
        const T = layout.length;
        const M = mask.maxItems;
        samples.forEach((segments, b) => {
          // Walk the row: item j "starts" where the next token would go.
          const length = segments.reduce((n, s) => n + ('text' in s ? s.text.length : ((s as { marker: number[] }).marker.length)), 0);
          let t = left ? T - length : 0;
          const starts: number[] = [];
          for (const s of segments) {
            if ('text' in s) t += s.text.length;
            else {
              starts.push(t);
              t += (s as { marker: number[] }).marker.length;
            }
          }
          const offset = left ? T - length : 0;
          for (let q = 0; q < T; q++) {
            const real = q >= offset && q < offset + length;
            const seen = real ? starts.filter((s) => s <= q).length : 0;
            expect(mask.hasMedia[b * T + q]).toBe(seen > 0 ? 1 : 0);
            for (let k = 0; k < M * N; k++) {
              const slot = Math.floor(k / N);
              const visible = seen > 0 && (mode === 'all' ? slot < seen : slot === seen - 1);
              expect(mask.bias[(b * T + q) * M * N + k]).toBe(visible ? 0 : MASKED_BIAS);
            }
          }
        });
      }),
      { numRuns: 150 },
    );
  });
});

describe.each(TEST_BACKENDS)('cross-attention tensors on %s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('gives [B, 1, T, M*N] biases and arranges item features into slots with gradients', () => {
    expectNoLeaksSync(() => {
      const batch = packSequences(rows, options);
      const mask = batch.crossAttentionMask({ tokensPerItem: 2 });
      expect(mask.bias.shape).toEqual([2, 1, 6, 4]);
      expect(mask.hasMedia.shape).toEqual([2, 6]);
      expect(Array.from(mask.hasMedia.dataSync())).toEqual([0, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0]);
      // Three items (row 0: two, row 1: one), 2 tokens of width 3 each.
      const feats = [0, 1, 2].map((i) => tf.tensor2d(Array.from({ length: 6 }, (_, j) => 10 * (i + 1) + j), [2, 3]));
      const keys = gatherMediaSlots(feats, mask);
      expect(keys.shape).toEqual([2, 4, 3]);
      expect(keys.arraySync()).toEqual([
        [[10, 11, 12], [13, 14, 15], [20, 21, 22], [23, 24, 25]],
        [[30, 31, 32], [33, 34, 35], [0, 0, 0], [0, 0, 0]],
      ]);
      const w = tf.tensor3d(Array.from({ length: 24 }, (_, i) => i), [2, 4, 3]);
      const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(gatherMediaSlots([a, b, c], mask), w)))(feats);
      expect(grads.map((g) => Array.from(g.dataSync()))).toEqual([
        [0, 1, 2, 3, 4, 5],
        [6, 7, 8, 9, 10, 11],
        [12, 13, 14, 15, 16, 17],
      ]);
      expect(() => gatherMediaSlots(feats.slice(0, 2), mask)).toThrow(/expected features for 3 item\(s\)/);
      const wrong = tf.zeros([3, 3]);
      expect(() => gatherMediaSlots([feats[0]!, feats[1]!, wrong], mask)).toThrow(/item 2 has features of shape \[3,3\], expected \[2, 3\]/);
      tf.dispose([...feats, keys, w, ...grads, wrong, mask.bias, mask.hasMedia]);
      batch.dispose();
    });
  });
});
