/**
 * The parts of a composed model that HF's LlavaForConditionalGeneration can hold, found and checked in one place:
 * one image modality in 'vit' mode (a CLIP or SigLIP tower, integer taps, no merge), early fusion with the
 * `mlp2x_gelu` projector and no resampler, a placeholder id (HF's image_token_index) and a plain Llama-family LLM
 * (no inserted blocks, adapters or experts, 1-D RoPE). Anything else fails here, before a file is touched, saying
 * what HF's class lacks.
 */
import type * as tf from '@tensorflow/tfjs';
import type { RemapTable } from '@chimera/core';
import { isExtensionParameter } from '@chimera/llm';
import type { ComposedModel } from '../composed-model';
import { MLPProjector } from '../projectors/mlp';
import { EarlyFusion } from '../strategies/early-fusion';

/**
 * What the LLaVA export needs from `@chimera/vision-encoder`: its CLIP/SigLIP key table and config writer. Pass the
 * package itself (`import * as visionEncoder from '@chimera/vision-encoder'`): fusion does not depend on any
 * encoder package, so the caller supplies these.
 */
export interface LlavaVisionEncoderFunctions {
  /** The family's HF key table with `prefix` on the HF side (vision-encoder's `hfVisionRemapTable`). */
  hfVisionRemapTable(family: 'clip' | 'siglip', prefix?: string): RemapTable;
  /** The HF vision config of a tower's config; throws for towers HF has no class for (vision-encoder's `vitConfigToHF`). */
  vitConfigToHF(config: any): Record<string, unknown>;
}

/** The vision plugin as the export reads it (vision-encoder's VisionModality, typed by shape). */
interface VisionPluginShape {
  mode?: unknown;
  encoder?: { config: unknown } | null;
  layers?: readonly unknown[] | null;
  select?: unknown;
  continuousIn?: { featureDim: number };
}

/** Everything the LLaVA layout takes from the model, checked. */
export interface LlavaParts {
  /** The modality's name in the composed model (its parameters sit under `<modality>.`). */
  modality: string;
  /** The vision tower's HF family. */
  family: 'clip' | 'siglip';
  /** vitConfigToHF of the tower. */
  visionConfig: Record<string, unknown>;
  /** HF hidden_states indices, in the order their features are concatenated. */
  featureLayers: number[];
  /** LLaVA's vision_feature_select_strategy ('default' drops CLS). */
  select: 'default' | 'full';
  /** Placeholder id: HF's image_token_index. */
  imageTokenIndex: number;
  /** Positions one image takes: HF's image_seq_length. */
  imageSeqLength: number;
  /** Whether the projector's Linears have biases. */
  projectorBias: boolean;
}

const WHO = 'LLaVA export';

/** Finds and checks the LLaVA parts of `model`; `modality` defaults to the model's only modality. */
export function llavaParts(model: ComposedModel, vision: LlavaVisionEncoderFunctions, modality?: string): LlavaParts {
  if (!vision || typeof vision.vitConfigToHF !== 'function' || typeof vision.hfVisionRemapTable !== 'function') {
    throw new Error(
      `${WHO}: options.visionEncoder must supply hfVisionRemapTable and vitConfigToHF; pass the package: ` +
        "import * as visionEncoder from '@chimera/vision-encoder'",
    );
  }
  const names = [...model.modalities.keys()];
  const name = modality ?? (names.length === 1 ? names[0]! : undefined);
  if (name === undefined || !model.modalities.has(name)) {
    throw new Error(
      `${WHO}: LlavaForConditionalGeneration has one image modality; this model has ${names.length ? names.join(', ') : 'none'}` +
        (modality === undefined ? '; pass options.modality to pick one' : ` (no '${modality}')`),
    );
  }
  if (names.length !== 1) {
    throw new Error(`${WHO}: LlavaForConditionalGeneration holds one image modality, this model has ${names.join(', ')}; export a model of '${name}' alone`);
  }

  const plugin = model.modalities.get(name)! as unknown as VisionPluginShape;
  if (plugin.mode !== 'vit' || !plugin.encoder) {
    throw new Error(
      `${WHO}: '${name}' is not a vision plugin in 'vit' mode (mode ${JSON.stringify(plugin.mode)}); HF's LLaVA runs a ` +
        "fixed-size CLIP/SigLIP tower: use visionModality({ mode: 'vit', encoder })",
    );
  }
  if (!Array.isArray(plugin.layers) || (plugin.select !== 'default' && plugin.select !== 'full')) {
    throw new Error(`${WHO}: the '${name}' plugin does not say its feature taps (layers, select); update @chimera/vision-encoder`);
  }
  const featureLayers = plugin.layers.map((layer) => {
    if (typeof layer !== 'number') {
      throw new Error(`${WHO}: feature tap ${JSON.stringify(layer)} has no vision_feature_layer equivalent; use hidden_states indices such as -2`);
    }
    return layer;
  });
  const visionConfig = vision.vitConfigToHF(plugin.encoder.config); // throws for rope2d and other non-HF towers
  const family = visionConfig.model_type === 'siglip_vision_model' ? 'siglip' : 'clip';
  const hidden = visionConfig.hidden_size as number;
  const featureDim = plugin.continuousIn?.featureDim;
  if (featureDim !== hidden * featureLayers.length) {
    throw new Error(
      `${WHO}: '${name}' gives ${featureDim}-wide features where the tower's ${featureLayers.length} tap(s) give ` +
        `${hidden * featureLayers.length}: it merges patches, which HF's LLaVA does not; build the plugin without merge`,
    );
  }

  const strategy = model.strategies.get(name);
  if (!(strategy instanceof EarlyFusion)) {
    throw new Error(`${WHO}: '${name}' is fused by ${strategy?.kind ?? 'nothing'}; HF's LLaVA is early fusion: earlyFusion({ projector: 'mlp2x_gelu' })`);
  }
  if (strategy.resampler) {
    throw new Error(`${WHO}: '${name}' has a resampler, which HF's LLaVA lacks; export a model without one`);
  }
  const projector = strategy.projector;
  if (!(projector instanceof MLPProjector) || projector.linears.length !== 2) {
    throw new Error(
      `${WHO}: HF's LlavaMultiModalProjector is linear_1, GELU, linear_2 ('mlp2x_gelu'); '${name}' has another projector`,
    );
  }
  const projectorKeys = Object.keys(projector.stateDict()).sort();
  const projectorBias = projectorKeys.includes('linear_1.bias');
  const expectedKeys = ['linear_1.weight', 'linear_2.weight', ...(projectorBias ? ['linear_1.bias', 'linear_2.bias'] : [])].sort();
  if (projectorKeys.join() !== expectedKeys.join()) {
    throw new Error(`${WHO}: the projector holds ${projectorKeys.join(', ')}; HF's has ${expectedKeys.join(', ')}`);
  }

  const imageTokenIndex = model.placeholders.get(name);
  if (imageTokenIndex === undefined) {
    throw new Error(`${WHO}: '${name}' has no placeholder token; compose with placeholders: { ${name}: '<image>' } (HF's image_token_index)`);
  }
  const llmConfig = model.llm.config;
  if (llmConfig.mropeSections !== null) {
    throw new Error(`${WHO}: the LLM uses M-RoPE (Qwen2-VL), which HF's LLaVA does not; export it with its own model class`);
  }
  const extensions = Object.keys(model.llm.stateDict()).filter((n) => isExtensionParameter(n));
  if (extensions.length) {
    throw new Error(
      `${WHO}: the LLM carries parameters HF's LLaVA has no place for (${extensions.slice(0, 3).join(', ')}` +
        `${extensions.length > 3 ? ', ...' : ''}); remove the extension or save with model.save()`,
    );
  }

  const grid = Math.floor((visionConfig.image_size as number) / (visionConfig.patch_size as number));
  const keepsCls = family === 'clip' && plugin.select === 'full';
  return {
    modality: name,
    family,
    visionConfig,
    featureLayers,
    select: plugin.select,
    imageTokenIndex,
    imageSeqLength: grid * grid + (keepsCls ? 1 : 0),
    projectorBias,
  };
}

/** Tensors the caller owns, freed in one call. */
export function disposeAll(tensors: Record<string, tf.Tensor>): void {
  for (const t of Object.values(tensors)) if (!t.isDisposed) t.dispose();
}
