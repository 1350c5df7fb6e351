import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { layoutSequences, TOKEN_KIND, type PackOptions, type SequenceLayout } from '../src/modality/layout';
import { expandPlaceholders } from '../src/modality/placeholders';
import { attentionBiasValues, MASKED_BIAS } from '../src/modality/attention-bias';
import { rowPositions } from '../src/modality/positions';
import { ModalityRegistry } from '../src/modality/registry';
import type { MediaSegment, Sample, Segment } from '../src/modality/segments';

const TOY = 99; // placeholder id of 'toy'
const AUD = 98; // placeholder id of 'aud'
const base: PackOptions = { modalities: ['toy', 'aud'], placeholderIds: { toy: TOY, aud: AUD } };

/** Row r of a flat [B*T] array. */
function row<T extends ArrayLike<number>>(layout: SequenceLayout, values: T, r: number): number[] {
  return Array.from(values).slice(r * layout.length, (r + 1) * layout.length);
}

function axis(layout: SequenceLayout, a: number, r: number): number[] {
  const size = layout.batchSize * layout.length;
  return Array.from(layout.positions.slice(a * size + r * layout.length, a * size + (r + 1) * layout.length));
}

const sampleA: Segment[] = [{ text: [5, 6] }, { modality: 'toy', tokens: 3 }, { text: [7, 8] }];
const sampleB: Segment[] = [{ text: [9] }, { modality: 'toy', tokens: 2 }];

describe('placeholder expansion', () => {
  const media = (tokens: number): MediaSegment => ({ modality: 'toy', tokens });

  it('expands one placeholder per item to the item size', () => {
    const segments = expandPlaceholders({ ids: [1, TOY, 2, TOY, TOY], media: [media(3), media(2), media(1)] }, { toy: TOY });
    expect(segments).toEqual([{ text: [1], trained: true }, media(3), { text: [2], trained: true }, media(2), media(1)]);
    const layout = layoutSequences([{ ids: [1, TOY, 2], media: [media(3)] }], base);
    expect(row(layout, layout.inputIds, 0)).toEqual([1, TOY, TOY, TOY, 2]);
  });

  it('validates pre-expanded runs, splitting adjacent items by their declared size', () => {
    const segments = expandPlaceholders(
      { ids: [1, TOY, TOY, TOY, TOY, TOY, 2], media: [media(3), media(2)] },
      { toy: TOY },
    );
    expect(segments).toEqual([{ text: [1], trained: true }, media(3), media(2), { text: [2], trained: true }]);
    // Without a declared size, an item takes its whole run.
    const inferred = expandPlaceholders({ ids: [TOY, TOY, TOY, 4], media: [{ modality: 'toy' }] }, { toy: TOY });
    expect(inferred[0]).toEqual({ modality: 'toy', tokens: 3 });
  });

  it('keeps trained flags of the text around placeholders', () => {
    const segments = expandPlaceholders(
      { ids: [1, 2, TOY, 3, 4], media: [media(2)], trained: [false, false, false, false, true] },
      { toy: TOY },
    );
    expect(segments).toEqual([{ text: [1, 2], trained: false }, media(2), { text: [3], trained: false }, { text: [4], trained: true }]);
  });

  it('fails clearly on missing items, extra items, short runs and wrong modalities', () => {
    expect(() => expandPlaceholders({ ids: [TOY, 1, TOY, TOY], media: [media(1)] }, { toy: TOY }, 'single')).toThrow(
      /row 0: placeholder <toy> \(id 99\) at index 2 has no media item/,
    );
    expect(() => expandPlaceholders({ ids: [1, TOY], media: [media(1), media(1)] }, { toy: TOY })).toThrow(
      /lists 2 media item\(s\) but only 1 placeholder slot/,
    );
    expect(() => expandPlaceholders({ ids: [TOY, TOY, 3], media: [media(4)] }, { toy: TOY }, 'expanded')).toThrow(
      'row 0: toy item 0 needs 4 positions but the sequence has a run of 2 <toy> placeholder(s) at index 0',
    );
    expect(() => expandPlaceholders({ ids: [AUD], media: [media(1)] }, { toy: TOY, aud: AUD })).toThrow(
      /media item 0 is 'toy' but the placeholder at index 0 is <aud>/,
    );
    expect(() => expandPlaceholders({ ids: [TOY], media: [{ modality: 'toy' }] }, { toy: TOY }, 'single')).toThrow(
      /has no tokens count/,
    );
    expect(() => expandPlaceholders({ ids: [1], media: [] }, { toy: 5, aud: 5 })).toThrow(/used by both 'toy' and 'aud'/);
  });
});

describe('layout', () => {
  it('places ids, routing, kinds and padding (right and left)', () => {
    const right = layoutSequences([sampleA, sampleB], base);
    expect(right.length).toBe(7);
    expect(row(right, right.inputIds, 0)).toEqual([5, 6, TOY, TOY, TOY, 7, 8]);
    expect(row(right, right.inputIds, 1)).toEqual([9, TOY, TOY, 0, 0, 0, 0]);
    expect(row(right, right.tokenModality, 0)).toEqual([0, 0, 1, 1, 1, 0, 0]);
    expect(row(right, right.paddingMask, 1)).toEqual([1, 1, 1, 0, 0, 0, 0]);
    expect(row(right, right.tokenKind, 1)).toEqual([1, 3, 3, 0, 0, 0, 0]);

    const left = layoutSequences([sampleA, sampleB], { ...base, padding: 'left', padId: 3 });
    expect(row(left, left.inputIds, 1)).toEqual([3, 3, 3, 3, 9, TOY, TOY]);
    expect(row(left, left.paddingMask, 1)).toEqual([0, 0, 0, 0, 1, 1, 1]);
    expect(left.media[1]).toMatchObject({ row: 1, start: 5, length: 2, sourceIndex: 1 });
    expect(left.rowStarts).toEqual([0, 4]);
  });

  it('routes by the registry order when given a registry', () => {
    const stub = (name: string) => ({ name, prepare: (x: unknown) => x, tokensFor: () => 1, continuousIn: { featureDim: 1, encode: () => ({ features: [], tokensPerItem: [] }) } });
    const registry = new ModalityRegistry([stub('aud'), stub('toy')]);
    const layout = layoutSequences([sampleB], { modalities: registry });
    expect(row(layout, layout.tokenModality, 0)).toEqual([0, 2, 2]);
  });

  it('makes sequential and shared (CogVLM) 1-D positions; left padding starts at 0', () => {
    const seq = layoutSequences([sampleA, sampleB], base);
    expect(row(seq, seq.positions, 0)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(row(seq, seq.positions, 1)).toEqual([0, 1, 2, 0, 0, 0, 0]);
    expect(seq.nextPositions).toEqual([7, 3]);

    const shared = layoutSequences([sampleA, sampleB], { ...base, positions: 'shared' });
    expect(row(shared, shared.positions, 0)).toEqual([0, 1, 2, 2, 2, 3, 4]);
    expect(row(shared, shared.positions, 1)).toEqual([0, 1, 1, 0, 0, 0, 0]);
    expect(shared.nextPositions).toEqual([5, 2]);

    const left = layoutSequences([sampleA, sampleB], { ...base, padding: 'left', positions: 'shared' });
    expect(row(left, left.positions, 1)).toEqual([0, 0, 0, 0, 0, 1, 1]);
  });

  it('makes 3-D M-RoPE positions from grids (Qwen2-VL)', () => {
    const image: Segment[] = [{ text: [5, 6] }, { modality: 'toy', tokens: 6, grid: { rows: 2, cols: 3 } }, { text: [7] }];
    const layout = layoutSequences([image], { ...base, positions: 'mrope' });
    expect(layout.positionRank).toBe(3);
    expect(axis(layout, 0, 0)).toEqual([0, 1, 2, 2, 2, 2, 2, 2, 5]);
    expect(axis(layout, 1, 0)).toEqual([0, 1, 2, 2, 2, 3, 3, 3, 5]);
    expect(axis(layout, 2, 0)).toEqual([0, 1, 2, 3, 4, 2, 3, 4, 5]);
    expect(layout.nextPositions).toEqual([6]);

    const video = rowPositions([{ length: 1, media: false }, { length: 4, media: true, grid: { frames: 2, rows: 1, cols: 2 } }], 'mrope');
    expect(video.axes).toEqual([
      [0, 1, 1, 2, 2],
      [0, 1, 1, 1, 1],
      [0, 1, 2, 1, 2],
    ]);
    expect(video.next).toBe(3);

    // Left padding shifts the row but not its ids; media without a grid count like text.
    const left = layoutSequences([image, [{ text: [1] }, { modality: 'aud', tokens: 2 }]], { ...base, positions: 'mrope', padding: 'left' });
    for (let a = 0; a < 3; a++) expect(axis(left, a, 1)).toEqual([0, 0, 0, 0, 0, 0, 0, 1, 2]);
    expect(() =>
      layoutSequences([[{ modality: 'toy', tokens: 5, grid: { rows: 2, cols: 2 } }]], { ...base, positions: 'mrope' }),
    ).toThrow(/occupies 5 positions but its grid 1x2x2 covers 4/);
  });

  it('fails clearly on bad input', () => {
    expect(() => layoutSequences([], base)).toThrow(/the batch is empty/);
    expect(() => layoutSequences([[{ modality: 'imgae', tokens: 2 }]], base)).toThrow(
      "unknown modality 'imgae' in row 0 segment 0; known modalities: toy, aud",
    );
    expect(() => layoutSequences([{ ids: [1, 7], media: [{ modality: 'vid', tokens: 1 }] }], base)).toThrow(
      /unknown modality 'vid' in row 0; known modalities: toy, aud/,
    );
    expect(() => layoutSequences([sampleA, sampleB], { ...base, maxLength: 6 })).toThrow(
      'row 0 needs 7 positions (text 4, toy 3) but maxLength is 6',
    );
    expect(() => layoutSequences([sampleA], { ...base, padTo: 5 })).toThrow(/needs 7 positions but padTo is 5/);
    expect(() => layoutSequences([[{ modality: 'toy' }]], base)).toThrow(/needs a positive integer tokens count, got undefined/);
    expect(() => layoutSequences([[{ modality: 'toy', kind: 'codes' }]], base)).toThrow(/needs codes/);
    expect(() => layoutSequences([[{ modality: 'toy', kind: 'codes', codes: [1, 2], tokens: 3 }]], base)).toThrow(
      /declares 3 tokens but has 2 codes/,
    );
    expect(() => layoutSequences([[{ text: [1, -2] }]], base)).toThrow(/non-negative integers, got -2 at index 1/);
    expect(() => layoutSequences([sampleA], { ...base, unifiedVocab: { img: 100 } })).toThrow(/in options.unifiedVocab/);
  });

  it('pads to a fixed length', () => {
    const layout = layoutSequences([sampleB], { ...base, padTo: 6 });
    expect(layout.length).toBe(6);
    expect(row(layout, layout.paddingMask, 0)).toEqual([1, 1, 1, 0, 0, 0]);
  });
});

describe('targets and loss masks', () => {
  it('shifts text targets and masks padding, media and untrained text', () => {
    const prompt: Segment[] = [{ text: [5, 6], trained: false }, { modality: 'toy', tokens: 2 }, { text: [7, 8] }];
    const layout = layoutSequences([prompt, sampleB], base);
    const { ids, mask } = layout.targets.text;
    // row 0: 5 6 T T 7 8 -> position t predicts t+1 when t+1 is trained text.
    expect(row(layout, mask, 0)).toEqual([0, 0, 0, 1, 1, 0]);
    expect(row(layout, ids, 0)).toEqual([0, 0, 0, 7, 8, 0]);
    // row 1: 9 T T pad pad pad: nothing to predict.
    expect(row(layout, mask, 1)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('gives discrete codes their own shifted head (Janus) or the text head (Chameleon)', () => {
    const sample: Segment[] = [{ text: [1, 2], trained: false }, { modality: 'toy', kind: 'codes', codes: [4, 0, 7] }, { text: [3] }];
    const own = layoutSequences([sample], base);
    expect(row(own, own.inputIds, 0)).toEqual([1, 2, TOY, TOY, TOY, 3]);
    expect(row(own, own.targets.codes.toy!.mask, 0)).toEqual([0, 1, 1, 1, 0, 0]);
    expect(row(own, own.targets.codes.toy!.ids, 0)).toEqual([0, 4, 0, 7, 0, 0]);
    expect(row(own, own.targets.text.mask, 0)).toEqual([0, 0, 0, 0, 1, 0]);
    expect(row(own, own.tokenModality, 0)).toEqual([0, 0, 1, 1, 1, 0]);
    expect(own.sources.map((s) => [s.modality, s.kind, s.rows])).toEqual([['toy', 'codes', 3]]);

    const unified = layoutSequences([sample], { ...base, unifiedVocab: { toy: 100 } });
    expect(row(unified, unified.inputIds, 0)).toEqual([1, 2, 104, 100, 107, 3]);
    expect(row(unified, unified.targets.text.mask, 0)).toEqual([0, 1, 1, 1, 1, 0]);
    expect(row(unified, unified.targets.text.ids, 0)).toEqual([0, 104, 100, 107, 3, 0]);
    expect(unified.targets.codes).toEqual({});
    expect(unified.sources).toEqual([]);

    const notTrained = layoutSequences([[{ text: [1] }, { modality: 'toy', kind: 'codes', codes: [4, 5], trained: false }]], base);
    expect(Array.from(notTrained.targets.codes.toy!.mask)).toEqual([0, 0, 0]);
  });

  it('marks diffusion latent positions without a shift (Transfusion)', () => {
    const sample: Segment[] = [{ text: [1] }, { modality: 'toy', kind: 'latents', tokens: 2 }, { text: [2] }];
    const clean: Segment[] = [{ modality: 'toy', kind: 'latents', tokens: 3, trained: false }, { text: [3] }];
    const layout = layoutSequences([sample, clean], base);
    const latents = layout.targets.latents.toy!;
    expect(row(layout, latents.mask, 0)).toEqual([0, 1, 1, 0]);
    expect(row(layout, latents.mask, 1)).toEqual([0, 0, 0, 0]);
    expect(Array.from(latents.index)).toEqual([1, 2, 4, 5, 6]);
    expect(Array.from(latents.trained)).toEqual([1, 1, 0, 0, 0]);
    // The text after a latent block is still a text target, predicted from the block's last position.
    expect(row(layout, layout.targets.text.mask, 0)).toEqual([0, 0, 1, 0]);
  });

  it('never trains the text head on cross-attention markers', () => {
    const layout = layoutSequences([[{ text: [1] }, { modality: 'toy', kind: 'cross', marker: [50] }, { text: [2, 3] }]], base);
    expect(row(layout, layout.inputIds, 0)).toEqual([1, 50, 2, 3]);
    expect(row(layout, layout.tokenModality, 0)).toEqual([0, 0, 0, 0]);
    expect(row(layout, layout.tokenKind, 0)).toEqual([1, TOKEN_KIND.marker, 1, 1]);
    expect(row(layout, layout.targets.text.mask, 0)).toEqual([0, 1, 1, 0]);
    expect(layout.sources).toEqual([]);
  });
});

/** The bias rule written from the segments themselves, not from the layout's arrays. */
function oracleBias(samples: Segment[][], T: number, options: { left?: boolean; bidirectionalMedia?: boolean; prefixLM?: boolean }): number[] {
  const out: number[] = [];
  for (const segments of samples) {
    const n = segments.reduce((s, seg) => s + ('text' in seg ? seg.text.length : 'kind' in seg && seg.kind === 'cross' ? (seg.marker ?? []).length : seg.kind === 'codes' ? seg.codes!.length : seg.tokens!), 0);
    const offset = options.left ? T - n : 0;
    const segOf: number[] = new Array(T).fill(-1);
    let t = offset;
    segments.forEach((seg, i) => {
      const len = 'text' in seg ? seg.text.length : seg.kind === 'cross' ? (seg.marker ?? []).length : seg.kind === 'codes' ? seg.codes!.length : seg.tokens!;
      for (let j = 0; j < len; j++) segOf[t++] = i;
    });
    const learns = (seg: Segment) => ('text' in seg ? seg.trained ?? true : seg.kind === 'codes' || seg.kind === 'latents' ? seg.trained ?? true : false);
    let prefixEnd = -1;
    if (options.prefixLM) {
      prefixEnd = segments.findIndex(learns);
      if (prefixEnd < 0) prefixEnd = segments.length;
    }
    const bidirectional = (i: number) => {
      const seg = segments[i]!;
      if ('text' in seg) return false;
      return seg.bidirectional ?? (options.bidirectionalMedia === true && (seg.kind ?? 'features') !== 'codes' && seg.kind !== 'cross');
    };
    for (let q = 0; q < T; q++) {
      for (let k = 0; k < T; k++) {
        const sk = segOf[k]!;
        const sq = segOf[q]!;
        let ok = sk >= 0 && (k <= q || (sq === sk && bidirectional(sq)) || (sq >= 0 && sq < prefixEnd && sk < prefixEnd));
        out.push(ok ? 0 : MASKED_BIAS);
        ok = false;
      }
    }
  }
  return out;
}

describe('attention bias', () => {
  const samples: Segment[][] = [
    [{ text: [1, 2], trained: false }, { modality: 'toy', tokens: 3 }, { text: [3], trained: false }, { text: [4, 5] }],
    [{ modality: 'aud', tokens: 2 }, { text: [6] }],
  ];

  it('is causal with padding keys masked, by hand on a small case', () => {
    const layout = layoutSequences([[{ text: [1] }, { modality: 'toy', tokens: 2 }], [{ text: [2, 3] }]], base);
    const M = MASKED_BIAS;
    expect(Array.from(attentionBiasValues(layout))).toEqual([
      0, M, M,
      0, 0, M,
      0, 0, 0,
      // row 1: position 2 is padding
      0, M, M,
      0, 0, M,
      0, 0, M,
    ]);
    const bidi = layoutSequences([[{ text: [1] }, { modality: 'toy', tokens: 2 }]], { ...base, bidirectionalMedia: true });
    expect(Array.from(attentionBiasValues(bidi))).toEqual([0, M, M, 0, 0, 0, 0, 0, 0]);
  });

  for (const padding of ['right', 'left'] as const) {
    for (const bidirectionalMedia of [false, true]) {
      for (const prefixLM of [false, true]) {
        it(`matches the oracle (${padding} padding, bidirectionalMedia ${bidirectionalMedia}, prefixLM ${prefixLM})`, () => {
          const layout = layoutSequences(samples, { ...base, padding, bidirectionalMedia, prefixLM });
          const expected = oracleBias(samples, layout.length, { left: padding === 'left', bidirectionalMedia, prefixLM });
          expect(Array.from(attentionBiasValues(layout))).toEqual(expected);
        });
      }
    }
  }

  it('lets explicit prefix flags override prefixLM and keeps codes causal', () => {
    const layout = layoutSequences(
      [[{ text: [1], prefix: true }, { text: [2], prefix: true }, { modality: 'toy', kind: 'codes', codes: [1, 2] }]],
      { ...base, prefixLM: true, bidirectionalMedia: true },
    );
    const M = MASKED_BIAS;
    // prefixLM alone would give no prefix here (the first segment is trained text).
    expect(Array.from(attentionBiasValues(layout))).toEqual([
      0, 0, M, M,
      0, 0, M, M,
      0, 0, 0, M,
      0, 0, 0, 0,
    ]);
  });
});

describe('properties over random interleavings', () => {
  const textArb = fc.record({ text: fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 4 }), trained: fc.boolean() });
  const mediaArb = fc.oneof(
    fc.record({ modality: fc.constantFrom('toy', 'aud'), kind: fc.constant('features' as const), tokens: fc.integer({ min: 1, max: 4 }) }),
    fc.record({ modality: fc.constantFrom('toy', 'aud'), kind: fc.constant('latents' as const), tokens: fc.integer({ min: 1, max: 3 }), trained: fc.boolean() }),
    fc.record({ modality: fc.constant('toy'), kind: fc.constant('codes' as const), codes: fc.array(fc.integer({ min: 0, max: 7 }), { minLength: 1, maxLength: 3 }) }),
    fc.record({ modality: fc.constant('aud'), kind: fc.constant('cross' as const), marker: fc.array(fc.constant(60), { maxLength: 1 }) }),
  );
  const rowArb = fc.array(fc.oneof(textArb, mediaArb), { minLength: 1, maxLength: 6 }) as fc.Arbitrary<Segment[]>;
  const batchArb = fc.array(rowArb, { minLength: 1, maxLength: 3 });
  const optionsArb = fc.record({
    padding: fc.constantFrom('right' as const, 'left' as const),
    positions: fc.constantFrom('sequential' as const, 'shared' as const),
    bidirectionalMedia: fc.boolean(),
  });

  it('covers every spliced position exactly once, in item order', () => {
    fc.assert(
      fc.property(batchArb, optionsArb, (samples: Sample[], options) => {
        const layout = layoutSequences(samples, { ...base, ...options });
        for (const [s, source] of layout.sources.entries()) {
          const seen = new Array(source.rows).fill(0);
          layout.spliceSource.forEach((v, p) => {
            if (v === s) seen[layout.spliceRow[p]!]++;
          });
          expect(seen.every((c) => c === 1)).toBe(true);
          let next = 0;
          for (const item of source.items) {
            for (let i = 0; i < item.length; i++) expect(layout.spliceRow[item.row * layout.length + item.start + i]).toBe(next++);
          }
        }
        const spliced = layout.spliceSource.filter((v) => v >= 0).length;
        const expectedSpliced = layout.media.filter((m) => m.kind !== 'cross').reduce((n, m) => n + m.length, 0);
        expect(spliced).toBe(expectedSpliced);
      }),
      { numRuns: 150 },
    );
  });

  it('keeps 1-D positions monotone and every real query attending to itself and its past', () => {
    fc.assert(
      fc.property(batchArb, optionsArb, (samples: Sample[], options) => {
        const layout = layoutSequences(samples, { ...base, ...options });
        const T = layout.length;
        const bias = attentionBiasValues(layout);
        for (let b = 0; b < layout.batchSize; b++) {
          const start = layout.rowStarts[b]!;
          const end = start + layout.rowLengths[b]!;
          for (let t = start; t < end; t++) {
            const p = layout.positions[b * T + t]!;
            if (t === start) expect(p).toBe(0);
            else {
              const step = p - layout.positions[b * T + t - 1]!;
              if (options.positions === 'sequential') expect(step).toBe(1);
              else expect(step === 0 || step === 1).toBe(true);
            }
            for (let k = 0; k < T; k++) {
              const real = k >= start && k < end;
              const v = bias[(b * T + t) * T + k]!;
              if (!real) expect(v).toBe(MASKED_BIAS);
              else if (k <= t) expect(v).toBe(0);
            }
          }
        }
      }),
      { numRuns: 150 },
    );
  });

  it('trains heads only between two real positions, and media locations count items started so far', () => {
    fc.assert(
      fc.property(batchArb, optionsArb, (samples: Sample[], options) => {
        const layout = layoutSequences(samples, { ...base, ...options });
        const T = layout.length;
        const masks = [layout.targets.text.mask, ...Object.values(layout.targets.codes).map((c) => c.mask)];
        for (let p = 0; p < layout.batchSize * T; p++) {
          const trainedHeads = masks.filter((m) => m[p] === 1).length;
          expect(trainedHeads).toBeLessThanOrEqual(1);
          if (trainedHeads === 1) {
            expect(p % T).toBeLessThan(T - 1);
            expect(layout.paddingMask[p]).toBe(1);
            expect(layout.paddingMask[p + 1]).toBe(1);
            expect(layout.trained[p + 1]).toBe(1);
          }
        }
        for (let b = 0; b < layout.batchSize; b++) {
          const items = layout.media.filter((m) => m.row === b);
          for (let t = 0; t < T; t++) {
            expect(layout.mediaLocations[b * T + t]).toBe(items.filter((m) => m.start <= t).length);
          }
        }
      }),
      { numRuns: 100 },
    );
  });
});
