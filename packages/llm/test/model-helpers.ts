// Shared helpers for the model tests: deterministic data, exact comparisons and a plain-JS float64 Llama forward.
import * as tf from '@tensorflow/tfjs';
import { Rng } from '@chimera/core/testing';
import type { CausalLM } from '../src/model/causal-lm';
import { headDimOf } from '../src/config';

export function randomIds(batch: number, length: number, vocab: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: batch }, () => Array.from({ length }, () => rng.nextInt(vocab)));
}

export function idsTensor(ids: number[][]): tf.Tensor2D {
  return tf.tensor2d(ids, undefined, 'int32');
}

/** Exact equality of every element (the "bitwise" identity tests). */
export function exactlyEqual(a: tf.Tensor, b: tf.Tensor): boolean {
  if (a.shape.join() !== b.shape.join()) return false;
  const x = a.dataSync();
  const y = b.dataSync();
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

/** Gives every norm weight and bias non-trivial values, so a test sees whether they are applied. */
export function perturbNorms(model: CausalLM, seed = 7): void {
  const rng = new Rng(seed);
  tf.tidy(() => {
    for (const [name, v] of model.namedParameters()) {
      if (/norm\.weight$/.test(name)) v.assign(tf.tensor(Array.from({ length: v.size }, () => 0.6 + 0.8 * rng.next()), v.shape));
      if (/proj\.bias$/.test(name)) v.assign(tf.tensor(Array.from({ length: v.size }, () => 0.2 * (rng.next() - 0.5)), v.shape));
    }
  });
}

type Mat = number[][];

/** Per-token routing for the reference: each token's modality and how attention uses it. */
export interface ReferenceRouting {
  tokenModality: number[][];
  mode: 'shared-attention' | 'towers';
}

/**
 * The Llama forward written from the definitions in float64 (no tfjs ops): RMSNorm, rotate-half RoPE at positions
 * 0..T-1, GQA causal attention with optional q/k/v/o biases, SwiGLU, tied or untied head. Returns logits [B][T][V].
 * With `routing`, a routed weight of modality k > 0 is read from `model.layers.{l}.experts.{k}.*` when present:
 * in 'shared-attention' mode key/value token s uses its own modality's norm and projections; in 'towers' mode
 * every key/value seen by query t is computed with t's modality (its whole tower).
 */
export function referenceLogits(model: CausalLM, ids: number[][], routing?: ReferenceRouting): number[][][] {
  const c = model.config;
  const H = c.numHeads;
  const Hkv = c.numKvHeads;
  const Dh = headDimOf(c);
  const state = model.stateDict();
  const cache = new Map<string, unknown>();
  const get = (name: string) => {
    if (!cache.has(name)) cache.set(name, state[name]?.arraySync());
    return cache.get(name) as Mat | number[] | undefined;
  };
  const param = (l: number, sub: string, modality: number) => {
    const expert = `model.layers.${l}.experts.${modality}.${sub}`;
    return modality > 0 && expert in state ? get(expert) : get(`model.layers.${l}.${sub}`);
  };
  const mat = (l: number, sub: string, m: number) => param(l, sub, m) as Mat;
  const vec = (l: number, sub: string, m: number) => param(l, sub, m) as number[] | undefined;
  const linear = (x: number[], w: Mat, b?: number[]) => w[0]!.map((_, o) => x.reduce((s, xi, i) => s + xi * w[i]![o]!, b ? b[o]! : 0));
  const rms = (x: number[], w: number[]) => {
    const r = 1 / Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length + c.rmsNormEps);
    return x.map((v, i) => v * r * w[i]!);
  };
  const rotate = (v: number[], p: number) => {
    const half = Dh / 2;
    const out = v.slice();
    for (let j = 0; j < half; j++) {
      const a = p * Math.pow(c.ropeTheta, (-2 * j) / Dh);
      out[j] = v[j]! * Math.cos(a) - v[j + half]! * Math.sin(a);
      out[j + half] = v[j + half]! * Math.cos(a) + v[j]! * Math.sin(a);
    }
    return out;
  };
  const heads = (v: number[], count: number) => Array.from({ length: count }, (_, h) => v.slice(h * Dh, (h + 1) * Dh));
  const silu = (v: number) => v / (1 + Math.exp(-v));
  const embed = get('model.embed_tokens.weight') as Mat;
  return ids.map((row, b) => {
    const modality = (t: number) => routing?.tokenModality[b]![t] ?? 0;
    let x = row.map((id) => embed[id]!.slice());
    for (let l = 0; l < c.numLayers; l++) {
      // Key/value of token s as computed by modality m's weights (position s).
      const keyValue = (s: number, m: number) => {
        const n = rms(x[s]!, vec(l, 'input_layernorm.weight', m)!);
        const k = heads(linear(n, mat(l, 'self_attn.k_proj.weight', m), vec(l, 'self_attn.k_proj.bias', m)), Hkv).map((hv) => rotate(hv, s));
        const v = heads(linear(n, mat(l, 'self_attn.v_proj.weight', m), vec(l, 'self_attn.v_proj.bias', m)), Hkv);
        return { k, v };
      };
      x = x.map((xt, t) => {
        const m = modality(t);
        const n = rms(xt, vec(l, 'input_layernorm.weight', m)!);
        const q = heads(linear(n, mat(l, 'self_attn.q_proj.weight', m), vec(l, 'self_attn.q_proj.bias', m)), H).map((hv) => rotate(hv, t));
        const kv = Array.from({ length: t + 1 }, (_, s) => keyValue(s, routing?.mode === 'towers' ? m : modality(s)));
        const merged: number[] = [];
        for (let h = 0; h < H; h++) {
          const g = Math.floor(h / (H / Hkv));
          const scores = kv.map(({ k }) => q[h]!.reduce((acc, qd, d) => acc + qd * k[g]![d]!, 0) / Math.sqrt(Dh));
          const max = Math.max(...scores);
          const e = scores.map((sc) => Math.exp(sc - max));
          const z = e.reduce((a, v) => a + v, 0);
          for (let d = 0; d < Dh; d++) merged.push(e.reduce((acc, w, s) => acc + (w / z) * kv[s]!.v[g]![d]!, 0));
        }
        const o = linear(merged, mat(l, 'self_attn.o_proj.weight', m), vec(l, 'self_attn.o_proj.bias', m));
        return xt.map((v, i) => v + o[i]!);
      });
      x = x.map((xt, t) => {
        const m = modality(t);
        const n2 = rms(xt, vec(l, 'post_attention_layernorm.weight', m)!);
        const gate = linear(n2, mat(l, 'mlp.gate_proj.weight', m));
        const up = linear(n2, mat(l, 'mlp.up_proj.weight', m));
        const out = linear(gate.map((gv, i) => silu(gv) * up[i]!), mat(l, 'mlp.down_proj.weight', m));
        return xt.map((v, i) => v + out[i]!);
      });
    }
    const head = c.tieWordEmbeddings ? embed[0]!.map((_, i) => embed.map((r) => r[i]!)) : (get('lm_head.weight') as Mat);
    return x.map((xt) => linear(rms(xt, get('model.norm.weight') as number[]), head));
  });
}

export function maxAbsDiffArrays(got: tf.Tensor, expected: number[][][]): number {
  const g = got.arraySync() as number[][][];
  let m = 0;
  g.forEach((r, b) => r.forEach((v, t) => v.forEach((x, i) => (m = Math.max(m, Math.abs(x - expected[b]![t]![i]!))))));
  return m;
}
