// LlamaGen's VQ building blocks, NHWC: ResnetBlock, AttnBlock (1x1-conv single-head attention over the pixels),
// Downsample (pad right and bottom by one, then a stride-2 3x3 conv), Upsample (nearest 2x, then a 3x3 conv).
// Children carry the checkpoint's names (norm1, conv1, nin_shortcut, q, k, v, proj_out, conv).
import * as tf from '@tensorflow/tfjs';
import { Conv2d, GroupNorm, Module, Upsample as Interpolate } from '@chimera/core';
import type { VQConfig } from './config';

/** The GroupNorm settings every block takes from the config. */
export type Norms = Pick<VQConfig, 'normGroups' | 'normEps'>;

function norm(channels: number, c: Norms): GroupNorm {
  return new GroupNorm(c.normGroups, channels, { eps: c.normEps });
}

/** swish(x) = x * sigmoid(x). */
export function swish(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
}

/** Pre-activation residual block: GroupNorm, swish, 3x3 conv, twice; a 1x1 `nin_shortcut` when the width changes. */
export class ResnetBlock extends Module {
  /** GroupNorm before the first conv. */
  readonly norm1: GroupNorm;
  /** First 3x3 conv (in -> out). */
  readonly conv1: Conv2d;
  /** GroupNorm before the second conv. */
  readonly norm2: GroupNorm;
  /** Second 3x3 conv (out -> out). */
  readonly conv2: Conv2d;
  /** 1x1 projection of the skip path when the width changes. */
  readonly ninShortcut: Conv2d | null;

  constructor(inChannels: number, outChannels: number, c: Norms) {
    super();
    this.norm1 = this.addModule('norm1', norm(inChannels, c));
    this.conv1 = this.addModule('conv1', new Conv2d(inChannels, outChannels, 3, { padding: 1 }));
    this.norm2 = this.addModule('norm2', norm(outChannels, c));
    this.conv2 = this.addModule('conv2', new Conv2d(outChannels, outChannels, 3, { padding: 1 }));
    this.ninShortcut = inChannels === outChannels ? null : this.addModule('nin_shortcut', new Conv2d(inChannels, outChannels, 1));
  }

  /** x [B, H, W, C] -> the block's output (NHWC). */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let h = this.conv1.forward(swish(this.norm1.forward(x)));
      h = this.conv2.forward(swish(this.norm2.forward(h)));
      const skip = this.ninShortcut ? this.ninShortcut.forward(x) : x;
      return tf.add(skip, h);
    });
  }
}

/** Single-head self-attention over the pixels, with 1x1 convs for q, k, v and the output; residual. */
export class AttnBlock extends Module {
  /** GroupNorm before the projections. */
  readonly norm: GroupNorm;
  /** Query projection (1x1 conv). */
  readonly q: Conv2d;
  /** Key projection (1x1 conv). */
  readonly k: Conv2d;
  /** Value projection (1x1 conv). */
  readonly v: Conv2d;
  /** Output projection (1x1 conv, `proj_out`). */
  readonly projOut: Conv2d;

  constructor(channels: number, c: Norms) {
    super();
    this.norm = this.addModule('norm', norm(channels, c));
    this.q = this.addModule('q', new Conv2d(channels, channels, 1));
    this.k = this.addModule('k', new Conv2d(channels, channels, 1));
    this.v = this.addModule('v', new Conv2d(channels, channels, 1));
    this.projOut = this.addModule('proj_out', new Conv2d(channels, channels, 1));
  }

  /** x [B, H, W, C] -> the block's output (NHWC). */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const [b, h, w, c] = x.shape as [number, number, number, number];
      const hn = this.norm.forward(x);
      const flat = (t: tf.Tensor) => tf.reshape(t, [b, h * w, c]); // [B, HW, C]
      const q = flat(this.q.forward(hn));
      const k = flat(this.k.forward(hn));
      const v = flat(this.v.forward(hn));
      const weights = tf.softmax(tf.mul(tf.matMul(q, k, false, true), c ** -0.5)); // [B, HW(query), HW(key)]
      const attended = tf.reshape(tf.matMul(weights, v), [b, h, w, c]);
      return tf.add(x, this.projOut.forward(attended));
    });
  }
}

/** Halves the image: pad right and bottom by one, then a 3x3 stride-2 conv. */
export class Downsample extends Module {
  /** The 3x3 conv. */
  readonly conv: Conv2d;

  constructor(channels: number) {
    super();
    this.conv = this.addModule('conv', new Conv2d(channels, channels, 3, { stride: 2 }));
  }

  /** x [B, H, W, C] -> the block's output (NHWC). */
  forward(x: tf.Tensor): tf.Tensor {
    // LlamaGen pads (left 0, right 1, top 0, bottom 1) so an even side halves exactly.
    return tf.tidy(() => this.conv.forward(tf.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]])));
  }
}

/** Doubles the image: nearest-neighbour 2x, then a 3x3 conv. */
export class Upsample extends Module {
  /** The 3x3 conv. */
  readonly conv: Conv2d;
  private readonly resize = new Interpolate({ scaleFactor: 2, mode: 'nearest' });

  constructor(channels: number) {
    super();
    this.conv = this.addModule('conv', new Conv2d(channels, channels, 3, { padding: 1 }));
  }

  /** x [B, H, W, C] -> the block's output (NHWC). */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.conv.forward(this.resize.forward(x)));
  }
}
