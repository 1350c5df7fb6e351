/**
 * From samples to the backbone's inputs. First in plain JS: samples become segments (each media item through
 * its strategy) and core's packer lays them out, so a bad sample fails before any tensor exists. Then, inside
 * the caller's tf scope: every strategy contributes its tensors (features, forward context), features are
 * spliced into the text embeddings at their placeholders, and the CausalLM inputs are assembled.
 */
import type * as tf from '@tensorflow/tfjs';
import {
  SequenceBatch,
  layoutSequences,
  spliceEmbeddings,
  type ItemFeatures,
  type PackOptions,
  type SequenceLayout,
  type SpliceInputs,
} from '@chimera/core';
import type { CausalLM, CausalLMInputs } from '@chimera/llm';
import { encodeItems } from './item-features';
import { resolveSamples, type ComposedSample, type SampleContext } from './samples';
import type { Contribution, StrategyItem } from './strategies/strategy';

/** Pack options a composed model passes to core's packer (besides modalities, placeholders and padding). */
export type ComposedPackOptions = Pick<
  PackOptions,
  'padId' | 'maxLength' | 'positions' | 'bidirectionalMedia' | 'prefixLM' | 'unifiedVocab' | 'placeholderMode'
>;

export interface PackingContext extends SampleContext {
  backbone: CausalLM;
  /** Modality names in routing order. */
  modalityNames: readonly string[];
  packOptions: ComposedPackOptions;
  /** Pass tokenModality to the backbone. */
  routesByModality: boolean;
}

/** A batch laid out in plain JS, with each strategy's items and the positions their segments took. */
export interface LaidOutBatch {
  layout: SequenceLayout;
  items: Map<string, StrategyItem[]>;
  mode: 'forward' | 'generate';
}

/** What buildInputs returns (tensors in the caller's scope). */
export interface BackboneInputs {
  batch: SequenceBatch;
  inputs: CausalLMInputs;
  /** Each modality's contribution (for its strategy's loss terms). */
  contributions: Map<string, Contribution>;
}

/** Resolves and lays out `samples` (right padding for training, left padding for generation prompts). */
export function layoutBatch(samples: readonly ComposedSample[], ctx: PackingContext, mode: 'forward' | 'generate'): LaidOutBatch {
  const resolved = resolveSamples(samples, ctx);
  const placeholderIds = Object.fromEntries(ctx.placeholders);
  const layout = layoutSequences(resolved.rows, {
    ...ctx.packOptions,
    modalities: ctx.modalityNames,
    placeholderIds,
    padding: mode === 'generate' ? 'left' : 'right',
  });
  const items = new Map<string, StrategyItem[]>();
  for (const name of ctx.modalityNames) {
    const wanted = resolved.items.get(name) ?? [];
    const placed = layout.media.filter((m) => m.modality === name);
    let next = 0;
    items.set(
      name,
      wanted.map((entry) => {
        const own = placed.slice(next, next + entry.segments);
        next += entry.segments;
        if (own.length !== entry.segments || own.some((p) => p.row !== entry.row)) {
          throw new Error(`internal: the ${name} items and their placed segments disagree (row ${entry.row})`);
        }
        return { item: entry.item, row: entry.row, placed: own, where: entry.where };
      }),
    );
  }
  return { layout, items, mode };
}

/** Runs every strategy's contribution and assembles the backbone inputs. Call inside a tf scope. */
export function buildInputs(laid: LaidOutBatch, ctx: PackingContext): BackboneInputs {
  const { layout } = laid;
  const features: Record<string, ItemFeatures> = {};
  const latents: Record<string, ItemFeatures> = {};
  const embedCodes: Record<string, (ids: tf.Tensor1D) => tf.Tensor> = {};
  const context: Record<string, unknown> = {};
  const contributions = new Map<string, Contribution>();
  for (const name of ctx.modalityNames) {
    const strategy = ctx.strategies.get(name)!;
    const items = laid.items.get(name) ?? [];
    const contribution = strategy.contribute({
      items,
      layout,
      mode: laid.mode,
      training: ctx.backbone.training,
      backbone: ctx.backbone,
      encode: (options) => encodeItems(name, ctx.modalities.get(name)!, items, options),
    });
    contributions.set(name, contribution);
    if (contribution.features) features[name] = contribution.features;
    if (contribution.latents) latents[name] = contribution.latents;
    if (contribution.embedCodes) embedCodes[name] = contribution.embedCodes;
    for (const [key, value] of Object.entries(contribution.context ?? {})) {
      if (Object.hasOwn(context, key)) {
        throw new Error(`the ${strategy.kind} strategy of '${name}' writes forward-context key '${key}', which another strategy already wrote`);
      }
      context[key] = value;
    }
  }
  const splice: SpliceInputs = {
    embedText: (ids) => ctx.backbone.model.embed_tokens.forward(ids),
    features,
    latents,
    embedCodes,
  };
  // Without spliced sources the ids go in directly: the exact computation of the plain LLM.
  const embeds = layout.sources.length > 0 ? spliceEmbeddings(layout, splice) : null;
  const batch = new SequenceBatch(layout, embeds);
  const inputs: CausalLMInputs = {
    ...(embeds ? { inputsEmbeds: embeds } : { inputIds: batch.inputIds }),
    paddingMask: batch.paddingMask,
    context,
  };
  // The backbone derives sequential positions and the causal + padding bias itself; pass them when they differ.
  if (layout.positionMode !== 'sequential') inputs.positions = batch.positions;
  if (needsOwnBias(layout)) inputs.attentionBias = batch.attentionBias;
  if (ctx.routesByModality) inputs.tokenModality = batch.tokenModality;
  return { batch, inputs, contributions };
}

/** True when the layout's attention is not plain causal + padding (prefix-LM, bidirectional media blocks). */
export function needsOwnBias(layout: SequenceLayout): boolean {
  return layout.prefix.some((p) => p === 1) || layout.block.some((b) => b >= 0);
}
