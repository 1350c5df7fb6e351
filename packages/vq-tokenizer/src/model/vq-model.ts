/**
 * A VQ-VAE / VQGAN image tokenizer in LlamaGen's layout (the VQ of Janus): encoder -> quant_conv -> codebook
 * (quantize) -> post_quant_conv -> decoder. Images are NHWC in [-1, 1]; the code grid is the image size divided by
 * 2^(levels - 1). State-dict names are the checkpoint's (`encoder.conv_blocks.0.res.0.conv1.weight`, ...), in
 * tfjs layouts (the checkpoint import transposes).
 */
import * as tf from '@tensorflow/tfjs';
import { Conv2d, Module } from '@chimera/core';
import { VectorQuantizer, checkCodes, type CodebookUpdate, type QuantizeLosses } from '../codebook/vector-quantizer';
import { VQDecoder, VQEncoder } from './coders';
import { downsampleFactor, resolveVQConfig, type VQConfig } from './config';

/** VQModel sizes (any VQConfig field) and how its codebook learns. */
export interface VQModelOptions extends Partial<VQConfig> {
  /** How the codebook learns: 'loss' (default, LlamaGen) or 'ema'. */
  codebookUpdate?: CodebookUpdate;
  /** EMA decay (default 0.99). */
  emaDecay?: number;
}

/** What a training forward pass gives. */
export interface VQForward {
  /** Decoded images [B, H, W, C]. */
  reconstruction: tf.Tensor4D;
  /** int32 [B, h, w]. */
  codes: tf.Tensor3D;
  /** The codebook's losses (scalars). */
  losses: QuantizeLosses;
  /** The matched (normalised, detached) latents [B, h, w, dim], for EMA updates and dead-code restarts. */
  latents: tf.Tensor4D;
}

/** The tokenizer: encoder, quant_conv, codebook, post_quant_conv, decoder (LlamaGen / Janus names). */
export class VQModel extends Module {
  /** The resolved sizes. */
  readonly config: VQConfig;
  /** Images -> latents. */
  readonly encoder: VQEncoder;
  /** 1x1 conv zChannels -> codebookDim (`quant_conv`). */
  readonly quantConv: Conv2d;
  /** The codebook (`quantize`). */
  readonly quantize: VectorQuantizer;
  /** 1x1 conv codebookDim -> zChannels (`post_quant_conv`). */
  readonly postQuantConv: Conv2d;
  /** Latents -> images. */
  readonly decoder: VQDecoder;
  /** Image side / code-grid side. */
  readonly downsample: number;

  constructor(options: VQModelOptions = {}) {
    super();
    const { codebookUpdate, emaDecay, ...sizes } = options;
    const c = resolveVQConfig(sizes);
    this.config = c;
    this.downsample = downsampleFactor(c);
    this.encoder = this.addModule('encoder', new VQEncoder(c));
    this.quantConv = this.addModule('quant_conv', new Conv2d(c.zChannels, c.codebookDim, 1));
    this.quantize = this.addModule(
      'quantize',
      new VectorQuantizer({
        codebookSize: c.codebookSize,
        codebookDim: c.codebookDim,
        l2Norm: c.codebookL2Norm,
        beta: c.beta,
        entropyLossRatio: c.entropyLossRatio,
        entropyTemperature: c.entropyTemperature,
        update: codebookUpdate,
        decay: emaDecay,
      }),
    );
    this.postQuantConv = this.addModule('post_quant_conv', new Conv2d(c.codebookDim, c.zChannels, 1));
    this.decoder = this.addModule('decoder', new VQDecoder(c));
  }

  /** Number of codes. */
  get codebookSize(): number {
    return this.config.codebookSize;
  }

  /** The code grid [rows, cols] of an image of `height` x `width` (throws when not a multiple of the downsampling). */
  gridFor(height: number, width: number): [number, number] {
    const f = this.downsample;
    if (!(Number.isInteger(height) && Number.isInteger(width) && height >= f && width >= f && height % f === 0 && width % f === 0)) {
      const near = (x: number) => [...new Set([Math.max(f, Math.floor(x / f) * f), Math.max(f, Math.ceil(x / f) * f)])].join(' or ');
      throw new Error(
        `VQModel: image ${width}x${height} (width x height) is not a multiple of the downsampling ${f} (2^(levels - 1) for ` +
          `channelMult [${this.config.channelMult}]); resize or crop to a multiple of ${f}, e.g. ${near(width)} x ${near(height)}`,
      );
    }
    return [height / f, width / f];
  }

  /** images [B, H, W, C] in [-1, 1] -> pre-quantisation latents [B, h, w, codebookDim]. */
  encodeLatents(images: tf.Tensor): tf.Tensor4D {
    this.checkImages(images, 'encodeLatents');
    return tf.tidy(() => this.quantConv.forward(this.encoder.forward(images)) as tf.Tensor4D);
  }

  /** images [B, H, W, C] in [-1, 1] -> codes int32 [B, h, w]. */
  encode(images: tf.Tensor): tf.Tensor3D {
    return tf.tidy(() => this.quantize.encode(this.encodeLatents(images)) as tf.Tensor3D);
  }

  /** codes [B, h, w] -> code values [B, h, w, codebookDim]. */
  lookup(codes: tf.Tensor): tf.Tensor4D {
    this.checkCodeGrid(codes, 'lookup');
    return this.quantize.lookup(codes) as tf.Tensor4D;
  }

  /** Quantized latents [B, h, w, codebookDim] -> images [B, H, W, C]. */
  decodeLatents(quantized: tf.Tensor): tf.Tensor4D {
    return tf.tidy(() => this.decoder.forward(this.postQuantConv.forward(quantized)) as tf.Tensor4D);
  }

  /** codes [B, h, w] -> images [B, h*f, w*f, C] in about [-1, 1]. */
  decode(codes: tf.Tensor): tf.Tensor4D {
    return tf.tidy(() => this.decodeLatents(this.lookup(codes)));
  }

  /**
   * The training pass: encode, quantize with the straight-through estimator, decode. `record` (default true when
   * training) counts code usage for `quantize.usage()` and dead-code restarts.
   */
  forward(images: tf.Tensor, options: { record?: boolean } = {}): VQForward {
    this.checkImages(images, 'forward');
    const latents = this.encodeLatents(images);
    const q = this.quantize.forward(latents, { record: options.record ?? this.training });
    latents.dispose();
    const reconstruction = this.decodeLatents(q.quantized);
    q.quantized.dispose();
    return { reconstruction, codes: q.codes as tf.Tensor3D, losses: q.losses, latents: q.latents as tf.Tensor4D };
  }

  private checkImages(images: tf.Tensor, where: string): void {
    const c = this.config.inChannels;
    if (images.rank !== 4 || images.shape[3] !== c) {
      throw new Error(`VQModel.${where}: images must be [batch, height, width, ${c}] (NHWC, values in [-1, 1]), got [${images.shape}]`);
    }
    this.gridFor(images.shape[1]!, images.shape[2]!);
  }

  private checkCodeGrid(codes: tf.Tensor, where: string): void {
    if (codes.rank !== 3) throw new Error(`VQModel.${where}: codes must be a grid [batch, rows, cols], got [${codes.shape}]; reshape flat codes with the grid from gridFor()`);
    checkCodes(codes, this.codebookSize, `VQModel.${where}`);
  }
}
