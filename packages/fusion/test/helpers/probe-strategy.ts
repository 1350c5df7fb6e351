// A test strategy written against the public FusionStrategy contract, the way later strategies (tokenized,
// diffusion) will be: it splices features through its own Linear, adds an output head to the backbone, declares
// the head as a 'head' group, and contributes a loss term read from the head's output.
import * as tf from '@tensorflow/tfjs';
import { Linear, Module, requirePath, type ContinuousInput, type MediaSegment, type Modality } from '@chimera/core';
import { underPrefix, type AttachContext, type Contribution, type ContributionInput, type FusionStrategy, type LossTermInput } from '../../src/index';

class ScalarHead extends Module {
  readonly proj: Linear;
  constructor(dim: number) {
    super();
    this.proj = this.addModule('proj', new Linear(dim, 1));
  }
  forward(hidden: tf.Tensor): tf.Tensor {
    return this.proj.forward(hidden);
  }
}

export class ProbeStrategy implements FusionStrategy {
  readonly kind = 'probe';
  private name = '';
  private modality: Modality<any, any, any> | null = null;
  private input: ContinuousInput<unknown> | null = null;
  private proj: Linear | null = null;

  attach(ctx: AttachContext): void {
    this.name = ctx.modalityName;
    this.modality = ctx.modality;
    this.input = requirePath(ctx.modality, 'continuousIn') as ContinuousInput<unknown>;
    this.proj = ctx.addModule('proj', new Linear(this.input.featureDim, ctx.hiddenSize));
    const headName = `${ctx.modalityName}_probe`;
    ctx.backbone.addHead(headName, new ScalarHead(ctx.hiddenSize));
    ctx.declareGroup({ name: 'head', kind: 'head', description: 'probe head', match: underPrefix(`llm.heads.${headName}`) });
  }

  tokensFor(item: unknown): number {
    return this.modality!.tokensFor(item, 'continuousIn');
  }

  segments(item: unknown): MediaSegment[] {
    return [{ modality: this.name, kind: 'features', tokens: this.tokensFor(item) }];
  }

  contribute({ items, encode }: ContributionInput): Contribution {
    if (items.length === 0) return {};
    const { features } = encode();
    return { features: (features as tf.Tensor[]).map((f) => this.proj!.forward(f)) };
  }

  lossTerms({ output }: LossTermInput): Record<string, tf.Scalar> {
    return { probe: tf.mean(tf.square(tf.sub(output.heads[`${this.name}_probe`]!, 1))) as tf.Scalar };
  }
}
