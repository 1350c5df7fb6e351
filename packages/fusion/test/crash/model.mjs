// The composed model both sides of crash-safety.test.ts build, from the built packages.
import { manualSeed } from '@chimera/core';
import { CausalLM, tinyLlama } from '@chimera/llm';
import { VisionTransformer, tinyViT, visionModality } from '@chimera/vision-encoder';
import { compose, earlyFusion } from '@chimera/fusion';

export function composedModel() {
  manualSeed(1);
  const image = visionModality({ mode: 'vit', name: 'image', encoder: new VisionTransformer(tinyViT()), layers: 'final' });
  const backbone = new CausalLM(tinyLlama({ vocabSize: 32, hiddenSize: 16, numLayers: 2, numHeads: 2, numKvHeads: 1, intermediateSize: 32 }));
  const model = compose({ backbone, modalities: { image }, fusion: { image: earlyFusion({ projector: 'mlp2x_gelu' }) }, placeholders: { image: 31 } });
  model.trainOnly('projector');
  return model;
}
