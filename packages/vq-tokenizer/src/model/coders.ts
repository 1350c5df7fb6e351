// LlamaGen's VQ encoder and decoder (NHWC). Encoder: conv_in; per level, res blocks (+ attention at the last
// level) then a downsample (all levels but the last); mid = res, attn, res; GroupNorm, swish, conv_out to
// z_channels. The decoder mirrors it, with one more res block per level and upsampling.
import * as tf from '@tensorflow/tfjs';
import { Conv2d, GroupNorm, Module, ModuleList } from '@chimera/core';
import { AttnBlock, Downsample, ResnetBlock, Upsample, swish } from './blocks';
import type { VQConfig } from './config';

/** One resolution level: `res.{j}`, `attn.{j}`, and `downsample` or `upsample`. */
export class ConvLevel extends Module {
  /** Res blocks of the level (`res.{j}`). */
  readonly res: ModuleList<ResnetBlock>;
  /** Attention after each res block at the lowest resolution, else empty (`attn.{j}`). */
  readonly attn: ModuleList<AttnBlock>;
  /** `downsample` (encoder) or `upsample` (decoder); null on the last level. */
  readonly resample: Downsample | Upsample | null;

  constructor(res: ResnetBlock[], attn: AttnBlock[], resample: { name: 'downsample' | 'upsample'; module: Downsample | Upsample } | null) {
    super();
    this.res = this.addModule('res', new ModuleList(res));
    this.attn = this.addModule('attn', new ModuleList(attn));
    this.resample = resample ? this.addModule(resample.name, resample.module) : null;
  }

  /** Res (and attention) blocks, then the resampling. */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let h = x;
      this.res.items.forEach((block, j) => {
        h = block.forward(h);
        if (this.attn.items.length > 0) h = this.attn.items[j]!.forward(h);
      });
      return this.resample ? this.resample.forward(h) : h;
    });
  }
}

function middle(channels: number, c: VQConfig): ModuleList<Module> {
  const blocks: Module[] = [new ResnetBlock(channels, channels, c)];
  if (c.attention) blocks.push(new AttnBlock(channels, c));
  blocks.push(new ResnetBlock(channels, channels, c));
  return new ModuleList(blocks);
}

function runAll(blocks: ModuleList<Module>, x: tf.Tensor): tf.Tensor {
  return blocks.items.reduce((h, m) => (m as ResnetBlock | AttnBlock).forward(h), x);
}

/** Images [B, H, W, C] -> latents [B, H/f, W/f, zChannels]. */
export class VQEncoder extends Module {
  /** First 3x3 conv (`conv_in`). */
  readonly convIn: Conv2d;
  /** The resolution levels (`conv_blocks.{i}`). */
  readonly convBlocks: ModuleList<ConvLevel>;
  /** Res, attention (when enabled), res at the lowest resolution. */
  readonly mid: ModuleList<Module>;
  /** Final GroupNorm (`norm_out`). */
  readonly normOut: GroupNorm;
  /** Final 3x3 conv (`conv_out`). */
  readonly convOut: Conv2d;

  constructor(c: VQConfig) {
    super();
    const levels = c.channelMult.length;
    this.convIn = this.addModule('conv_in', new Conv2d(c.inChannels, c.channels, 3, { padding: 1 }));
    const inMult = [1, ...c.channelMult];
    let width = c.channels;
    const convLevels: ConvLevel[] = [];
    for (let i = 0; i < levels; i++) {
      width = c.channels * inMult[i]!;
      const out = c.channels * c.channelMult[i]!;
      const res: ResnetBlock[] = [];
      const attn: AttnBlock[] = [];
      for (let j = 0; j < c.numResBlocks; j++) {
        res.push(new ResnetBlock(width, out, c));
        width = out;
        if (i === levels - 1 && c.attention) attn.push(new AttnBlock(width, c));
      }
      convLevels.push(new ConvLevel(res, attn, i === levels - 1 ? null : { name: 'downsample', module: new Downsample(width) }));
    }
    this.convBlocks = this.addModule('conv_blocks', new ModuleList(convLevels));
    this.mid = this.addModule('mid', middle(width, c));
    this.normOut = this.addModule('norm_out', new GroupNorm(c.normGroups, width, { eps: c.normEps }));
    this.convOut = this.addModule('conv_out', new Conv2d(width, c.zChannels, 3, { padding: 1 }));
  }

  /** images [B, H, W, C] -> latents [B, H/f, W/f, zChannels]. */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let h = this.convIn.forward(x);
      for (const level of this.convBlocks.items) h = level.forward(h);
      h = runAll(this.mid, h);
      return this.convOut.forward(swish(this.normOut.forward(h)));
    });
  }
}

/** Latents [B, h, w, zChannels] -> images [B, h*f, w*f, C]. */
export class VQDecoder extends Module {
  /** First 3x3 conv (`conv_in`). */
  readonly convIn: Conv2d;
  /** Res, attention (when enabled), res at the lowest resolution. */
  readonly mid: ModuleList<Module>;
  /** The resolution levels (`conv_blocks.{i}`). */
  readonly convBlocks: ModuleList<ConvLevel>;
  /** Final GroupNorm (`norm_out`). */
  readonly normOut: GroupNorm;
  /** Final 3x3 conv (`conv_out`). */
  readonly convOut: Conv2d;

  constructor(c: VQConfig) {
    super();
    const levels = c.channelMult.length;
    let width = c.channels * c.channelMult[levels - 1]!;
    this.convIn = this.addModule('conv_in', new Conv2d(c.zChannels, width, 3, { padding: 1 }));
    this.mid = this.addModule('mid', middle(width, c));
    const convLevels: ConvLevel[] = [];
    for (let i = 0; i < levels; i++) {
      const out = c.channels * c.channelMult[levels - i - 1]!;
      const res: ResnetBlock[] = [];
      const attn: AttnBlock[] = [];
      for (let j = 0; j < c.numResBlocks + 1; j++) {
        res.push(new ResnetBlock(width, out, c));
        width = out;
        if (i === 0 && c.attention) attn.push(new AttnBlock(width, c));
      }
      convLevels.push(new ConvLevel(res, attn, i === levels - 1 ? null : { name: 'upsample', module: new Upsample(width) }));
    }
    this.convBlocks = this.addModule('conv_blocks', new ModuleList(convLevels));
    this.normOut = this.addModule('norm_out', new GroupNorm(c.normGroups, width, { eps: c.normEps }));
    this.convOut = this.addModule('conv_out', new Conv2d(width, c.inChannels, 3, { padding: 1 }));
  }

  /** latents [B, h, w, zChannels] -> images [B, h*f, w*f, C]. */
  forward(z: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let h = runAll(this.mid, this.convIn.forward(z));
      for (const level of this.convBlocks.items) h = level.forward(h);
      return this.convOut.forward(swish(this.normOut.forward(h)));
    });
  }
}
