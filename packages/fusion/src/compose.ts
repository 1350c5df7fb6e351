/**
 * compose(): a backbone LLM, modality plugins and one fusion strategy per modality become one ComposedModel.
 *
 *   const model = compose({
 *     backbone: new CausalLM(tinyLlama()),
 *     modalities: { image: visionModality({ mode: 'vit', encoder: new VisionTransformer(tinyViT()) }) },
 *     fusion: { image: earlyFusion({ projector: 'mlp2x_gelu' }) },
 *     placeholders: { image: IMAGE_ID },          // or '<image>' with a tokenizer that has it
 *   });
 *   model.trainOnly('projector');               // LLaVA stage 1
 *
 * The model takes ownership of the backbone (strategies insert blocks into it) and of the plugins' modules,
 * which it registers by role under the modality's name (`image.encoder.*`); `dispose()` frees them all.
 * Everything is checked here, before any strategy changes the backbone: unknown or missing modality names,
 * placeholder ids, conflicting pack options, positions that do not fit the backbone's RoPE (M-RoPE needs
 * `pack: { positions: 'mrope' }`).
 */
import { ModalityRegistry, type Modality, type Module } from '@chimera/core';
import { CausalLM, type TextTokenizer } from '@chimera/llm';
import { ComposedModel, ModalityParts } from './composed-model';
import type { TrainableSelection } from './freezing';
import type { ComposedPackOptions } from './packing';
import { ParameterGroups, underPrefix, type GroupKind } from './parameter-groups';
import type { AttachContext, FusionStrategy, StrategyPackOptions } from './strategies/strategy';

/** The composed model's name for the backbone. */
export const BACKBONE_NAME = 'llm';

/**
 * Options of {@link compose}: the backbone, the modality plugins, one fusion strategy per modality, and optionally a
 * tokenizer, placeholders, pack options and a freezing selection.
 */
export interface ComposeOptions {
  /** The LLM. Fusion strategies extend it in place. */
  backbone: CausalLM;
  /** Modality plugins keyed by their names (or a list); their order fixes tokenModality values. */
  modalities: Readonly<Record<string, Modality<any, any, any>>> | readonly Modality<any, any, any>[];
  /** One strategy per modality, keyed by modality name. */
  fusion: Readonly<Record<string, FusionStrategy>>;
  /** For text given as strings, placeholder names, and decoding generated text. */
  tokenizer?: TextTokenizer;
  /**
   * Placeholder token per modality: an id, or a token string the tokenizer knows (add it first with
   * addTokensToModel). Early fusion writes it at the item's positions; cross-attention uses it as the item's
   * marker; token samples use it to find items.
   */
  placeholders?: Readonly<Record<string, number | string>>;
  /**
   * Packer options for every batch (maxLength, positions, prefix-LM, ...); strategies may add their own. positions
   * must be 'mrope' exactly when the backbone has mropeSections (Qwen2-VL).
   */
  pack?: Omit<ComposedPackOptions, 'padId' | 'unifiedVocab' | 'placeholderMode'>;
  /** A freezing selection applied once composed (default: every parameter keeps its flag). */
  trainable?: TrainableSelection;
}

/**
 * Joins a backbone LLM, modality plugins and one fusion strategy per modality into a {@link ComposedModel}. The model
 * takes ownership of the backbone and the plugins' modules (`dispose()` frees them). Without `trainable`, every
 * parameter keeps the trainable flag it had; call `trainOnly` to choose.
 */
export function compose(options: ComposeOptions): ComposedModel {
  const { backbone } = options;
  if (!(backbone instanceof CausalLM)) {
    throw new Error(`compose: backbone must be a CausalLM from @chimera/llm, got ${describe(backbone)}`);
  }
  const modalities = resolveModalities(options.modalities);
  const strategies = resolveStrategies(options.fusion, modalities);
  const placeholders = resolvePlaceholders(options.placeholders ?? {}, modalities, options.tokenizer, backbone);
  const packOptions = mergePackOptions(options.pack ?? {}, strategies, backbone);
  checkPositionMode(packOptions, backbone);

  const groups = new ParameterGroups(BACKBONE_NAME);
  const model = new ComposedModel({ backbone, modalities, strategies, placeholders, tokenizer: options.tokenizer, packOptions, groups });
  for (const [name, modality] of modalities) registerPlugin(model.modalityParts(name), name, modality, groups);

  const claimedSlots = new Map<number, string>();
  const names = [...modalities.keys()];
  for (const [name, strategy] of strategies) {
    const parts = model.modalityParts(name);
    const ctx: AttachContext = {
      modalityName: name,
      modality: modalities.get(name)!,
      backbone,
      hiddenSize: backbone.config.hiddenSize,
      routingIndex: names.indexOf(name) + 1,
      numModalities: names.length + 1,
      placeholderId: placeholders.get(name),
      addModule(role, module, moduleOptions = {}) {
        checkRole(role, name, parts);
        parts.add(role, module);
        groups.declare({
          name: `${name}.${role}`,
          kind: moduleOptions.kind ?? 'connector',
          description: moduleOptions.description ?? `${strategy.kind} fusion module`,
          modality: name,
          match: underPrefix(`${name}.${role}`),
        });
        return module;
      },
      insertBlocks(block, insertOptions, group) {
        const infos = backbone.insertBlock(block, insertOptions);
        const prefixes = infos.map((info) => `${BACKBONE_NAME}.${info.prefix}`);
        groups.declare({
          name: `${name}.${group.name}`,
          kind: 'extension',
          description: group.description,
          modality: name,
          match: (n) => prefixes.some((p) => n.startsWith(`${p}.`)),
        });
        return infos;
      },
      declareGroup(group) {
        groups.declare({ ...group, name: `${name}.${group.name}`, modality: name });
      },
      claimStaticCacheSlot(slot, owner) {
        const holder = claimedSlots.get(slot);
        if (holder !== undefined) {
          throw new Error(
            `compose: ${owner} needs the KV cache's static slot ${slot}, which ${holder} already uses; ` +
              'put the cross-attention blocks at different layers',
          );
        }
        claimedSlots.set(slot, owner);
      },
    };
    strategy.attach(ctx);
  }
  if (options.trainable !== undefined) model.trainOnly(options.trainable);
  return model;
}

function resolveModalities(
  given: ComposeOptions['modalities'],
): Map<string, Modality<any, any, any>> {
  if (given === null || typeof given !== 'object') {
    throw new Error(`compose: modalities must be a record { image: plugin, ... } or a list of plugins, got ${describe(given)}`);
  }
  // The registry checks names (no dots), paths, duplicates and that record keys equal plugin names.
  const registry = new ModalityRegistry(given as Record<string, Modality<any, any, any>>);
  const out = new Map<string, Modality<any, any, any>>();
  for (const name of registry.names()) {
    if (name === BACKBONE_NAME) {
      throw new Error(`compose: a modality may not be called '${BACKBONE_NAME}' (the backbone's prefix); rename the plugin`);
    }
    out.set(name, registry.get(name));
  }
  if (out.size === 0) throw new Error('compose: no modalities given; a composed model needs at least one modality plugin');
  return out;
}

function resolveStrategies(
  fusion: ComposeOptions['fusion'],
  modalities: ReadonlyMap<string, Modality<any, any, any>>,
): Map<string, FusionStrategy> {
  if (fusion === null || typeof fusion !== 'object') {
    throw new Error(`compose: fusion must be a record { image: earlyFusion(), ... }, got ${describe(fusion)}`);
  }
  const known = [...modalities.keys()];
  for (const key of Object.keys(fusion)) {
    if (!modalities.has(key)) {
      throw new Error(
        `compose: fusion names modality '${key}', which is not among the modalities (${known.join(', ')}); ` +
          'fix the name or add the plugin to modalities',
      );
    }
  }
  const out = new Map<string, FusionStrategy>();
  const seen = new Map<FusionStrategy, string>();
  for (const name of known) {
    const strategy = fusion[name];
    if (!strategy) {
      throw new Error(
        `compose: modality '${name}' has no fusion strategy; add one, e.g. fusion: { ${name}: earlyFusion() } or ` +
          `gatedCrossAttention()`,
      );
    }
    if (typeof strategy.attach !== 'function' || typeof strategy.contribute !== 'function' || typeof strategy.segments !== 'function') {
      throw new Error(`compose: fusion.${name} is not a FusionStrategy (attach, segments, tokensFor, contribute)`);
    }
    const other = seen.get(strategy);
    if (other !== undefined) {
      throw new Error(`compose: fusion.${name} is the same strategy object as fusion.${other}; create one strategy per modality`);
    }
    seen.set(strategy, name);
    out.set(name, strategy);
  }
  return out;
}

function resolvePlaceholders(
  given: Readonly<Record<string, number | string>>,
  modalities: ReadonlyMap<string, Modality<any, any, any>>,
  tokenizer: TextTokenizer | undefined,
  backbone: CausalLM,
): Map<string, number> {
  const out = new Map<string, number>();
  const owner = new Map<number, string>();
  const vocab = backbone.config.vocabSize;
  for (const [name, value] of Object.entries(given)) {
    if (!modalities.has(name)) {
      throw new Error(
        `compose: placeholders names modality '${name}', which is not among the modalities (${[...modalities.keys()].join(', ')})`,
      );
    }
    let id: number;
    if (typeof value === 'string') {
      if (!tokenizer) throw new Error(`compose: placeholder '${value}' for ${name} is a token string; pass the tokenizer too, or give its id`);
      const found = tokenizer.tokenToId(value);
      if (found === undefined) {
        throw new Error(
          `compose: the tokenizer has no token '${value}' (placeholder of ${name}); add it first: ` +
            `addTokensToModel(tokenizer, backbone, ['${value}'])`,
        );
      }
      id = found;
    } else {
      id = value;
    }
    if (!Number.isInteger(id) || id < 0 || id >= vocab) {
      throw new Error(
        `compose: the ${name} placeholder id ${id} is outside the LLM's vocabulary [0, ${vocab}); resize the embeddings ` +
          '(addTokensToModel) or pick an existing id',
      );
    }
    const clash = owner.get(id);
    if (clash !== undefined) throw new Error(`compose: placeholder id ${id} is used by both '${clash}' and '${name}'; give each modality its own`);
    owner.set(id, name);
    out.set(name, id);
  }
  return out;
}

function mergePackOptions(
  user: NonNullable<ComposeOptions['pack']>,
  strategies: ReadonlyMap<string, FusionStrategy>,
  backbone: CausalLM,
): ComposedPackOptions {
  const merged: ComposedPackOptions = { ...user, padId: backbone.config.padTokenId ?? 0 };
  const setBy = new Map<string, string>(Object.keys(user).map((k) => [k, 'compose({ pack })']));
  for (const [name, strategy] of strategies) {
    for (const [key, value] of Object.entries(strategy.packOptions ?? {}) as [keyof StrategyPackOptions, unknown][]) {
      if (value === undefined) continue;
      const previous = merged[key];
      if (previous !== undefined && JSON.stringify(previous) !== JSON.stringify(value)) {
        throw new Error(
          `compose: the ${strategy.kind} strategy of '${name}' needs pack option ${key} = ${JSON.stringify(value)}, but ` +
            `${setBy.get(key)} set ${JSON.stringify(previous)}; these strategies cannot share one sequence`,
        );
      }
      (merged as Record<string, unknown>)[key] = value;
      setBy.set(key, `the ${strategy.kind} strategy of '${name}'`);
    }
  }
  return merged;
}

/**
 * The backbone's RoPE and the packer's positions must agree. An M-RoPE backbone (Qwen2-VL) given 1-D positions
 * would run, because [B, T] positions drive every axis alike (right for text), but its media tokens would lose
 * their grid: rows and columns collapse into one running count. 'mrope' positions give text the same ids as
 * 1-D ones, so requiring them loses nothing. The reverse, 3-D positions for a 1-D backbone, fails here rather
 * than at the first forward call.
 */
function checkPositionMode(packOptions: ComposedPackOptions, backbone: CausalLM): void {
  const sections = backbone.config.mropeSections;
  const mode = packOptions.positions ?? 'sequential';
  if (sections !== null && mode !== 'mrope') {
    throw new Error(
      `compose: the backbone uses M-RoPE (mropeSections [${sections.join(', ')}]: temporal, height and width axes), ` +
        `but the packer would give it 1-D '${mode}' positions${packOptions.positions === undefined ? ' (the default)' : ''}, ` +
        "so media tokens would lose their grid; pass compose({ pack: { positions: 'mrope' } })",
    );
  }
  if (sections !== null && sections.length !== 3) {
    throw new Error(
      `compose: the packer's M-RoPE positions have 3 axes (temporal, height, width), but the backbone's mropeSections ` +
        `[${sections.join(', ')}] has ${sections.length}; give it three sections summing to headDim / 2 (Qwen2-VL: [16, 24, 24])`,
    );
  }
  if (sections === null && mode === 'mrope') {
    throw new Error(
      "compose: pack positions 'mrope' makes 3-D (temporal, height, width) positions, but the backbone has 1-D RoPE " +
        '(no mropeSections); give the backbone a config with mropeSections (e.g. [2, 3, 3] for head dim 16, summing to ' +
        "headDim / 2), or use positions 'sequential'",
    );
  }
}

/** Registers a plugin's module children by role (`image.encoder`) and declares each as a group. */
function registerPlugin(parts: ModalityParts, name: string, modality: Modality<any, any, any>, groups: ParameterGroups): void {
  const module = modality.module;
  if (!module) return;
  const direct = module.namedParameters().filter(([n]) => !n.includes('.'));
  const buffers = module.namedBuffers().filter(([n]) => !n.includes('.'));
  if (direct.length > 0 || buffers.length > 0) {
    throw new Error(
      `compose: the '${name}' plugin's module holds parameters directly (${[...direct, ...buffers].map(([n]) => n).join(', ')}); ` +
        'a plugin module must hold its parts as children named by role: new ModalityModule({ encoder })',
    );
  }
  const kind: GroupKind = modality.continuousIn === undefined && modality.discrete !== undefined ? 'codec' : 'encoder';
  for (const [role, child] of module.children()) {
    parts.add(role, child as Module);
    groups.declare({
      name: `${name}.${role}`,
      kind,
      description: `the ${name} plugin's ${role}`,
      modality: name,
      match: underPrefix(`${name}.${role}`),
    });
  }
}

function checkRole(role: string, modality: string, parts: ModalityParts): void {
  if (!/^[A-Za-z0-9_]+$/.test(role)) {
    throw new Error(`compose: module role '${role}' for ${modality} is invalid; use letters, digits or '_'`);
  }
  if (parts.has(role)) {
    throw new Error(`compose: '${modality}.${role}' is already taken (by the plugin or another module); pick another role`);
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'an object';
  return typeof value;
}
