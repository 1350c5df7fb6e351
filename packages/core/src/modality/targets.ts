/**
 * Per-head training targets and loss masks from a layout. Autoregressive heads are shifted (the output at
 * position t predicts the token at t+1, so a mask follows the *target's* segment); the diffusion head is not
 * (Zhou et al. 2024, "Transfusion": a latent's own hidden state predicts its noise).
 */
import type { SequenceLayout } from './layout';
import { TOKEN_KIND } from './layout';

/** Targets of one autoregressive head as flat arrays. */
export interface HeadTargetArrays {
  /** [B*T]; 0 where the mask is 0, so it is always a valid class index. */
  ids: Int32Array;
  /** [B*T]; 1 where the head is trained. */
  mask: Float32Array;
}

/** Diffusion-latent targets of one modality as flat arrays. */
export interface LatentTargetArrays {
  /** [B*T]; 1 on trained latent positions. */
  mask: Float32Array;
  /** Flat positions (b*T + t) of every latent row, in the order of the concatenated latents. */
  index: Int32Array;
  /** Per latent row: 1 when its item is trained. */
  trained: Float32Array;
}

/** Every head's targets as flat arrays. */
export interface LayoutTargets {
  /** Next text token (text, and codes of modalities in the text vocabulary). */
  text: HeadTargetArrays;
  /** Next code, per modality with its own code head (Janus). */
  codes: Record<string, HeadTargetArrays>;
  /** Diffusion latent positions, per modality. */
  latents: Record<string, LatentTargetArrays>;
}

/**
 * Per-head targets and loss masks of a layout: autoregressive heads shifted (position t predicts t+1), latents
 * unshifted.
 */
export function layoutTargets(layout: Omit<SequenceLayout, 'targets'>): LayoutTargets {
  const { batchSize: B, length: T } = layout;
  const size = B * T;
  const text: HeadTargetArrays = { ids: new Int32Array(size), mask: new Float32Array(size) };
  const codes: Record<string, HeadTargetArrays> = {};
  for (const source of layout.sources) {
    if (source.kind === 'codes') codes[source.modality] = { ids: new Int32Array(size), mask: new Float32Array(size) };
  }
  for (let b = 0; b < B; b++) {
    for (let t = 0; t + 1 < T; t++) {
      const p = b * T + t;
      const q = p + 1;
      if (!layout.paddingMask[p] || !layout.paddingMask[q] || !layout.trained[q]) continue;
      if (layout.textVocab[q]) {
        if (layout.tokenKind[q] === TOKEN_KIND.marker) continue;
        text.ids[p] = layout.inputIds[q]!;
        text.mask[p] = 1;
      } else if (layout.tokenKind[q] === TOKEN_KIND.codes) {
        const head = codes[layout.modalityNames[layout.tokenModality[q]! - 1]!]!;
        head.ids[p] = layout.codeIds[q]!;
        head.mask[p] = 1;
      }
    }
  }
  const latents: Record<string, LatentTargetArrays> = {};
  for (const source of layout.sources) {
    if (source.kind !== 'latents') continue;
    const target: LatentTargetArrays = {
      mask: new Float32Array(size),
      index: new Int32Array(source.rows),
      trained: new Float32Array(source.rows),
    };
    let row = 0;
    for (const item of source.items) {
      for (let i = 0; i < item.length; i++, row++) {
        const flat = item.row * T + item.start + i;
        target.index[row] = flat;
        target.trained[row] = item.trained ? 1 : 0;
        if (item.trained) target.mask[flat] = 1;
      }
    }
    latents[source.modality] = target;
  }
  return { text, codes, latents };
}
