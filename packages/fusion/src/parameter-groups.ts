/**
 * Parameter groups: every parameter of a composed model belongs to exactly one named group (`llm`,
 * `image.encoder`, `image.projector`, `image.xattn`, ...) of one kind. Freezing presets are defined over kinds,
 * patterns may name groups, and `summary()` reports per group, so "what is frozen" always has one answer.
 *
 * Kinds:
 *   backbone   the plain LLM (`llm`, everything a text checkpoint holds)
 *   encoder    a modality plugin's encoder (`image.encoder`)
 *   codec      a plugin that only tokenizes (a VQ-VAE for image generation)
 *   connector  strategy modules between an encoder and the LLM (projectors, resamplers)
 *   extension  modules inserted into the LLM (cross-attention blocks, prefix adapters, modality experts)
 *   head       extra output heads on the LLM (image-code heads, diffusion heads)
 */
import type * as tf from '@tensorflow/tfjs';
import { isExtensionParameter } from '@chimera/llm';

/**
 * What a parameter group is: the plain LLM ('backbone'), a plugin's encoder or codec, a connector (projector,
 * resampler), an extension inside the LLM, or an extra head.
 */
export type GroupKind = 'backbone' | 'encoder' | 'codec' | 'connector' | 'extension' | 'head';

/** Every {@link GroupKind}. */
export const GROUP_KINDS: readonly GroupKind[] = ['backbone', 'encoder', 'codec', 'connector', 'extension', 'head'];

/** A parameter group's declaration: its name, kind, and which parameter names belong to it. */
export interface ParameterGroupSpec {
  /** e.g. `image.projector`. */
  name: string;
  /** What the group is (presets train by kind). */
  kind: GroupKind;
  /** One line shown in summaries. */
  description: string;
  /** The modality the group serves (none for the backbone's own groups). */
  modality?: string;
  /** Whether a full parameter name belongs to the group. */
  match: (parameterName: string) => boolean;
}

/** A group with its current parameters. */
export interface ParameterGroup extends Omit<ParameterGroupSpec, 'match'> {
  /** Full parameter names, in model order. */
  parameters: string[];
}

/** Prefix predicate: `prefix` itself or anything below it. */
export function underPrefix(prefix: string): (name: string) => boolean {
  return (name) => name === prefix || name.startsWith(`${prefix}.`);
}

/**
 * The group registry of one composed model. Groups declared by strategies are checked first, in declaration
 * order; the backbone's fallbacks (`llm`, `llm.extensions`, `llm.heads`) last.
 */
export class ParameterGroups {
  private readonly declared: ParameterGroupSpec[] = [];
  private readonly fallbacks: ParameterGroupSpec[];

  /** `backbonePrefix` is where the LLM sits in the composed model (`llm`). */
  constructor(backbonePrefix: string) {
    const inside = underPrefix(backbonePrefix);
    const strip = (name: string) => name.slice(backbonePrefix.length + 1);
    this.fallbacks = [
      {
        name: `${backbonePrefix}.heads`,
        kind: 'head',
        description: 'extra output heads added to the LLM',
        match: (n) => inside(n) && strip(n).startsWith('heads.'),
      },
      {
        name: `${backbonePrefix}.extensions`,
        kind: 'extension',
        description: 'LLM extensions no strategy declared (inserted blocks, adapters, experts)',
        match: (n) => inside(n) && isExtensionParameter(strip(n)),
      },
      { name: backbonePrefix, kind: 'backbone', description: 'the language model', match: inside },
    ];
  }

  /** Adds a group; throws for an invalid or repeated name or an unknown kind. */
  declare(spec: ParameterGroupSpec): void {
    if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(spec.name)) {
      throw new Error(`parameter group name '${spec.name}' is invalid: use dotted names of letters, digits, '_' or '-'`);
    }
    if (this.declared.some((g) => g.name === spec.name) || this.fallbacks.some((g) => g.name === spec.name)) {
      throw new Error(`parameter group '${spec.name}' is declared twice; give the second one another name`);
    }
    if (!GROUP_KINDS.includes(spec.kind)) {
      throw new Error(`parameter group '${spec.name}': kind must be one of ${GROUP_KINDS.join(', ')}, got '${spec.kind as string}'`);
    }
    this.declared.push(spec);
  }

  /** Every group spec, declared ones first. */
  specs(): readonly ParameterGroupSpec[] {
    return [...this.declared, ...this.fallbacks];
  }

  /** The group of a parameter name ('other' never happens for a composed model's own parameters). */
  groupOf(name: string): ParameterGroupSpec | undefined {
    return this.specs().find((g) => g.match(name));
  }

  /**
   * Assigns `parameters` (name, variable pairs, shared ones once) to groups. Groups without parameters are
   * left out. A parameter no group claims is an error (it would escape every preset).
   */
  assign(parameters: readonly [string, tf.Variable][]): ParameterGroup[] {
    const byName = new Map<string, ParameterGroup>();
    const unclaimed: string[] = [];
    for (const [name] of parameters) {
      const spec = this.groupOf(name);
      if (!spec) {
        unclaimed.push(name);
        continue;
      }
      let group = byName.get(spec.name);
      if (!group) {
        const { match: _match, ...rest } = spec;
        group = { ...rest, parameters: [] };
        byName.set(spec.name, group);
      }
      group.parameters.push(name);
    }
    if (unclaimed.length > 0) {
      throw new Error(
        `parameters outside every group: ${unclaimed.slice(0, 6).join(', ')}${unclaimed.length > 6 ? ', ...' : ''}; ` +
          'a strategy must register its modules with addModule / insertBlocks / declareGroup',
      );
    }
    // Display order: the LLM first, then the declared groups, then the LLM's undeclared extensions and heads.
    const [heads, extensions, backbone] = this.fallbacks;
    const order = [backbone!, ...this.declared, extensions!, heads!].map((g) => g.name);
    return [...byName.values()].sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
  }
}
