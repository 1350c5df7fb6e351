/**
 * The freezing policy of a composed model: presets for the training stages of the literature, defined over
 * parameter-group kinds, and explicit selections by group name or parameter-name pattern. A selection always
 * says which parameters train; everything else is frozen (no hidden defaults carried over from earlier calls).
 *
 * | preset          | trains                                           | stage                                          |
 * |-----------------|--------------------------------------------------|------------------------------------------------|
 * | 'projector'     | connectors (projectors, resamplers)              | LLaVA stage 1 (feature alignment), BLIP-2 stage 2 |
 * | 'projector+llm' | connectors, LLM, its extensions and heads        | LLaVA stage 2 (instruction tuning)             |
 * | 'fusion'        | connectors, LLM extensions, heads                | Flamingo, Llama 3.2 Vision, LLaMA-Adapter, CogVLM |
 * | 'llm'           | the plain LLM                                    | text-only training of the backbone             |
 * | 'all'           | everything                                       | full fine-tuning                               |
 * | 'none'          | nothing                                          | evaluation                                     |
 * | 'janus-stage1'  | connectors, heads                                | Janus stage 1 (adaptors and image head)        |
 * | 'janus-stage2'  | everything but encoders and codecs               | Janus stage 2 (unified pretraining)            |
 * | 'janus-stage3'  | everything but codecs                            | Janus stage 3 (supervised fine-tuning)         |
 */
import { globToRegExp, matchName } from '@chimera/core';
import type { GroupKind, ParameterGroup } from './parameter-groups';

/** A named freezing preset (see {@link TRAINABLE_PRESETS} for what each trains). */
export type TrainablePreset =
  | 'projector'
  | 'projector+llm'
  | 'fusion'
  | 'llm'
  | 'all'
  | 'none'
  | 'janus-stage1'
  | 'janus-stage2'
  | 'janus-stage3';

/** What a preset trains, by group kind. */
export interface PresetDefinition {
  /** Group kinds whose parameters train. */
  kinds: readonly GroupKind[];
  /** One line on what trains and when it is used. */
  description: string;
}

/** Every preset with the group kinds it trains (LLaVA stages, Flamingo, Janus stages, all, none). */
export const TRAINABLE_PRESETS: Readonly<Record<TrainablePreset, PresetDefinition>> = {
  projector: { kinds: ['connector'], description: 'projectors and resamplers only (LLaVA stage 1)' },
  'projector+llm': {
    kinds: ['connector', 'backbone', 'extension', 'head'],
    description: 'everything but the encoders (LLaVA stage 2)',
  },
  fusion: {
    kinds: ['connector', 'extension', 'head'],
    description: 'fusion modules only; LLM and encoders frozen (Flamingo, Llama 3.2 Vision)',
  },
  llm: { kinds: ['backbone'], description: 'the plain LLM only' },
  all: { kinds: ['backbone', 'encoder', 'codec', 'connector', 'extension', 'head'], description: 'everything' },
  none: { kinds: [], description: 'nothing (evaluation)' },
  'janus-stage1': { kinds: ['connector', 'head'], description: 'adaptors and heads (Janus stage 1)' },
  'janus-stage2': {
    kinds: ['connector', 'backbone', 'extension', 'head'],
    description: 'everything but encoders and codecs (Janus stage 2)',
  },
  'janus-stage3': {
    kinds: ['connector', 'backbone', 'extension', 'head', 'encoder'],
    description: 'everything but codecs (Janus stage 3)',
  },
};

/**
 * A parameter pattern. A string is first matched against group names (a glob over the whole name: `llm`,
 * `image.projector`, `*.xattn`); when it names no group it is a glob over parameter names, where `*` stays within
 * a dotted segment, `**` crosses segments and a bare prefix selects everything below it
 * (`llm.model.layers.0`). RegExps and predicates test full parameter names.
 */
export type ParameterPattern = string | RegExp | ((parameterName: string) => boolean);

type Patterns = ParameterPattern | readonly ParameterPattern[];

/** A preset, a list of patterns that train (everything else frozen), or patterns to train minus patterns to freeze. */
export type TrainableSelection = TrainablePreset | readonly ParameterPattern[] | { train: Patterns; freeze?: Patterns };

/** Whether `value` names a preset. */
export function isTrainablePreset(value: unknown): value is TrainablePreset {
  return typeof value === 'string' && Object.hasOwn(TRAINABLE_PRESETS, value);
}

/** The parameter names a selection trains, checked against the model's groups (typos are errors). */
export function resolveTrainable(selection: TrainableSelection, groups: readonly ParameterGroup[]): Set<string> {
  if (typeof selection === 'string') {
    if (!isTrainablePreset(selection)) {
      throw new Error(
        `unknown freezing preset '${selection}'; presets: ${Object.keys(TRAINABLE_PRESETS).join(', ')}. ` +
          `To train named groups or parameters pass a list, e.g. trainOnly(['${selection}'])`,
      );
    }
    const { kinds } = TRAINABLE_PRESETS[selection];
    const chosen = groups.filter((g) => kinds.includes(g.kind));
    if (chosen.length === 0 && kinds.length > 0) {
      throw new Error(
        `preset '${selection}' trains ${kinds.join(' / ')} groups, but this model has none (its groups: ` +
          `${describeGroups(groups)}); pick another preset or name the groups to train`,
      );
    }
    return new Set(chosen.flatMap((g) => g.parameters));
  }
  const { train, freeze } = Array.isArray(selection)
    ? { train: selection as readonly ParameterPattern[], freeze: [] as readonly ParameterPattern[] }
    : (selection as { train: Patterns; freeze?: Patterns });
  if (train === undefined) {
    throw new Error('trainOnly: expected a preset name, a list of patterns, or { train, freeze? }; got an object without train');
  }
  const trained = select(asList(train), groups, 'train');
  for (const name of select(asList(freeze ?? []), groups, 'freeze')) trained.delete(name);
  return trained;
}

function asList(patterns: Patterns): readonly ParameterPattern[] {
  return Array.isArray(patterns) ? (patterns as readonly ParameterPattern[]) : [patterns as ParameterPattern];
}

/** Union of what each pattern selects; a pattern selecting nothing is an error naming the groups. */
function select(patterns: readonly ParameterPattern[], groups: readonly ParameterGroup[], role: string): Set<string> {
  const out = new Set<string>();
  const allNames = groups.flatMap((g) => g.parameters);
  for (const pattern of patterns) {
    let names: string[];
    if (typeof pattern === 'string') {
      const regex = globToRegExp(pattern);
      const named = groups.filter((g) => regex.test(g.name));
      names = named.length > 0 ? named.flatMap((g) => g.parameters) : allNames.filter((n) => matchName(pattern, n));
    } else if (pattern instanceof RegExp || typeof pattern === 'function') {
      names = allNames.filter((n) => matchName(pattern, n));
    } else {
      throw new Error(`trainOnly: a pattern must be a string, RegExp or function, got ${typeof pattern}`);
    }
    if (names.length === 0) {
      throw new Error(
        `trainOnly: the ${role} pattern ${String(pattern)} matches no parameter group or parameter; ` +
          `groups: ${describeGroups(groups)} (see model.summary() for parameter names)`,
      );
    }
    for (const n of names) out.add(n);
  }
  return out;
}

function describeGroups(groups: readonly ParameterGroup[]): string {
  return groups.map((g) => `${g.name} (${g.kind})`).join(', ') || 'none';
}
