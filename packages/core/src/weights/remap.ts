/**
 * Key-remap tables between external checkpoints (HF / PyTorch names and layouts) and Chimera state dicts,
 * applied in both directions so an imported model exports back to the same keys and layouts.
 *
 * A table is an ordered list of rules, stated in the import direction (external -> internal); the first rule
 * that matches a key wins. A rule's external side is an exact name, a template with placeholders (`{i}`
 * matches one dotted segment, `{...rest}` one or more segments) or a RegExp (whole-key match; the internal
 * side uses `$1` / `$<name>`). Templates invert automatically; a RegExp rule needs an explicit `inverse` for
 * export. A rule may name a layout: PyTorch stores Linear weights [out, in], Conv1d [out, in, k], Conv2d [out, in, kH, kW]
 * and ConvTranspose2d [in, out, kH, kW]; Chimera stores [in, out], [k, in, out], [kH, kW, in, out] and
 * [kH, kW, out, in] (plain matMul, im2col matMul, NHWC conv2d, tfjs's conv2dTranspose), so they are transposed here.
 */
import * as tf from '@tensorflow/tfjs';
import { matchName, type NamePattern } from '../nn/module';
import { setOwn } from './header';

/**
 * How a tensor's layout differs between the sides. 'linear': [out, in] <-> [in, out]; 'conv2d':
 * [out, in, kH, kW] <-> [kH, kW, in, out]; 'conv1d': [out, in, k] <-> [k, in, out] (in per group);
 * 'convTranspose2d': [in, out, kH, kW] <-> [kH, kW, out, in]; a permutation array is the import permutation
 * (export applies its inverse).
 */
export type Layout = 'linear' | 'conv1d' | 'conv2d' | 'convTranspose2d' | readonly number[];

/**
 * One rule of a {@link RemapTable}: an external key pattern, the internal key it maps to, and the layout change
 * between them.
 */
export interface RemapRule {
  /** The key in the external checkpoint: exact name, `{placeholder}` template, or RegExp. */
  external: string | RegExp;
  /** The key in the Chimera state dict: exact name or template (placeholders, or `$1` after a RegExp). */
  internal: string;
  /**
   * Axis change between the external (PyTorch) and internal tensor, e.g. 'linear' for [out, in] -> [in, out]; none
   * copies as is.
   */
  layout?: Layout;
  /** For a RegExp rule used in export: matches internal keys and builds the external one. */
  inverse?: { internal: RegExp; external: string };
}

/**
 * A key-remap table between an external checkpoint layout (e.g. HF) and Chimera's state-dict names; used in both
 * directions.
 */
export interface RemapTable {
  /** Rules, tried in order; the first match wins. */
  rules: readonly RemapRule[];
  /** External keys dropped on import (e.g. `**.rotary_emb.inv_freq`): glob, RegExp or predicate. */
  ignoreExternal?: readonly NamePattern[];
  /** Internal keys dropped on export. */
  ignoreInternal?: readonly NamePattern[];
  /** What to do with keys no rule matches and no ignore pattern covers (default 'error'). */
  unmatched?: 'error' | 'drop' | 'keep';
}

/** 'import' maps external keys to internal ones, 'export' the reverse. */
export type RemapDirection = 'import' | 'export';

/** One key mapping of a {@link RemapPlan}. */
export interface RemapEntry {
  /** Key in the source dict. */
  source: string;
  /** Key it becomes. */
  target: string;
  /** Permutation to apply, or null to copy as is. */
  permutation: number[] | null;
}

/** The result of {@link planRemap}: which key becomes which, and what is dropped. */
export interface RemapPlan {
  /** Mappings in source order. */
  entries: RemapEntry[];
  /** Source keys dropped by ignore patterns (or by `unmatched: 'drop'`). */
  dropped: string[];
}

const LAYOUT_IMPORT_PERMUTATIONS: Record<'linear' | 'conv1d' | 'conv2d' | 'convTranspose2d', number[]> = {
  linear: [1, 0],
  conv1d: [2, 1, 0],
  conv2d: [2, 3, 1, 0],
  // The same axis moves as conv2d's: [in, out, kH, kW] -> [kH, kW, out, in].
  convTranspose2d: [2, 3, 1, 0],
};

/** The axis permutation of a layout for `direction` (import: PyTorch -> Chimera; export: its inverse). */
export function layoutPermutation(layout: Layout, direction: RemapDirection): number[] {
  const forward = typeof layout === 'string' ? LAYOUT_IMPORT_PERMUTATIONS[layout] : [...layout];
  if (!forward) {
    throw new Error(`unknown layout ${JSON.stringify(layout)}; expected linear, conv1d, conv2d, convTranspose2d or a permutation`);
  }
  if (direction === 'import') return forward;
  const inverse = new Array<number>(forward.length);
  forward.forEach((axis, i) => (inverse[axis] = i));
  return inverse;
}

/** PyTorch Linear weight [out, in] -> Chimera [in, out]. */
export function linearFromTorch(weight: tf.Tensor): tf.Tensor {
  return permute(weight, 'linear', 'import', 'linear weight');
}
/** Chimera Linear weight [in, out] -> PyTorch [out, in]. */
export function linearToTorch(weight: tf.Tensor): tf.Tensor {
  return permute(weight, 'linear', 'export', 'linear weight');
}
/** PyTorch Conv2d weight [out, in, kH, kW] -> Chimera / TF.js [kH, kW, in, out]. */
export function conv2dFromTorch(weight: tf.Tensor): tf.Tensor {
  return permute(weight, 'conv2d', 'import', 'conv2d weight');
}
/** Chimera / TF.js conv2d filter [kH, kW, in, out] -> PyTorch [out, in, kH, kW]. */
export function conv2dToTorch(weight: tf.Tensor): tf.Tensor {
  return permute(weight, 'conv2d', 'export', 'conv2d weight');
}
/** PyTorch Conv1d weight [out, in/groups, k] -> Chimera Conv1d [k, in/groups, out]. */
export function conv1dFromTorch(weight: tf.Tensor): tf.Tensor {
  return permute(weight, 'conv1d', 'import', 'conv1d weight');
}
/** Chimera Conv1d weight [k, in/groups, out] -> PyTorch [out, in/groups, k]. */
export function conv1dToTorch(weight: tf.Tensor): tf.Tensor {
  return permute(weight, 'conv1d', 'export', 'conv1d weight');
}
/** PyTorch ConvTranspose2d weight [in, out, kH, kW] -> Chimera / TF.js conv2dTranspose filter [kH, kW, out, in]. */
export function convTranspose2dFromTorch(weight: tf.Tensor): tf.Tensor {
  return permute(weight, 'convTranspose2d', 'import', 'convTranspose2d weight');
}
/** Chimera ConvTranspose2d weight [kH, kW, out, in] -> PyTorch [in, out, kH, kW]. */
export function convTranspose2dToTorch(weight: tf.Tensor): tf.Tensor {
  return permute(weight, 'convTranspose2d', 'export', 'convTranspose2d weight');
}

function permute(tensor: tf.Tensor, layout: Layout, direction: RemapDirection, name: string): tf.Tensor {
  const permutation = layoutPermutation(layout, direction);
  if (tensor.rank !== permutation.length) {
    throw new Error(
      `${name}: layout ${JSON.stringify(layout)} expects rank ${permutation.length}, got shape [${tensor.shape}]; ` +
        'fix the layout in the remap table',
    );
  }
  return tf.transpose(tensor, permutation);
}

// ---- templates ----

const PLACEHOLDER = /\{(\.\.\.)?([A-Za-z_][A-Za-z0-9_]*)\}/g;

interface CompiledSide {
  match: (key: string) => Record<string, string> | null;
  fill: (captures: Record<string, string>, key: string) => string;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function placeholders(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((m) => m[2]!);
}

function compileTemplate(template: string): RegExp {
  let source = '';
  let last = 0;
  const seen = new Set<string>();
  for (const m of template.matchAll(PLACEHOLDER)) {
    source += escapeRegExp(template.slice(last, m.index));
    const name = m[2]!;
    source += seen.has(name) ? `\\k<${name}>` : `(?<${name}>${m[1] ? '.+' : '[^.]+'})`;
    seen.add(name);
    last = m.index! + m[0].length;
  }
  source += escapeRegExp(template.slice(last));
  return new RegExp(`^${source}$`);
}

function fillTemplate(template: string, captures: Record<string, string>, ruleText: string): string {
  return template.replace(PLACEHOLDER, (_, _spread, name: string) => {
    const value = captures[name];
    if (value === undefined) throw new Error(`remap rule ${ruleText}: placeholder {${name}} is not captured by the other side`);
    return value;
  });
}

function regexSide(regex: RegExp, target: string): CompiledSide {
  // Anchoring inside a non-capturing group keeps the caller's group numbers and forces a whole-key match.
  const anchored = new RegExp(`^(?:${regex.source})$`, regex.flags.replace(/[gy]/g, ''));
  return {
    match: (key) => (anchored.test(key) ? {} : null),
    fill: (_captures, key) => key.replace(anchored, target),
  };
}

function templateSide(from: string, to: string, ruleText: string): CompiledSide {
  const regex = compileTemplate(from);
  return {
    match: (key) => {
      const m = regex.exec(key);
      return m ? { ...m.groups } : null;
    },
    fill: (captures) => fillTemplate(to, captures, ruleText),
  };
}

interface CompiledRule {
  side: CompiledSide;
  layout?: Layout;
}

function describeRule(rule: RemapRule, index: number): string {
  return `#${index} (${String(rule.external)} -> ${rule.internal})`;
}

function compileRules(table: RemapTable, direction: RemapDirection): CompiledRule[] {
  return table.rules.map((rule, index) => {
    const text = describeRule(rule, index);
    if (direction === 'import') {
      const side =
        rule.external instanceof RegExp
          ? regexSide(rule.external, rule.internal)
          : templateSide(rule.external, rule.internal, text);
      return { side, layout: rule.layout };
    }
    if (rule.external instanceof RegExp) {
      if (!rule.inverse) {
        throw new Error(
          `remap rule ${text} matches with a RegExp, which cannot be inverted for export; give it an ` +
            '`inverse: { internal: RegExp, external: string }` or write it as a {placeholder} template',
        );
      }
      return { side: regexSide(rule.inverse.internal, rule.inverse.external), layout: rule.layout };
    }
    const missing = placeholders(rule.external).filter((p) => !placeholders(rule.internal).includes(p));
    if (missing.length) {
      throw new Error(
        `remap rule ${text} cannot export: the internal template lacks {${missing.join('}, {')}}, so the external ` +
          'key cannot be rebuilt; add the placeholders or mark the rule import-only by using a RegExp',
      );
    }
    return { side: templateSide(rule.internal, rule.external, text), layout: rule.layout };
  });
}

/** Maps names without touching tensors: which source key becomes which target, with which permutation. */
export function planRemap(names: readonly string[], table: RemapTable, direction: RemapDirection): RemapPlan {
  const rules = compileRules(table, direction);
  const ignore = (direction === 'import' ? table.ignoreExternal : table.ignoreInternal) ?? [];
  const entries: RemapEntry[] = [];
  const dropped: string[] = [];
  const unmatched: string[] = [];
  const targets = new Map<string, string>();
  for (const source of names) {
    let entry: RemapEntry | null = null;
    for (const rule of rules) {
      const captures = rule.side.match(source);
      if (!captures) continue;
      entry = {
        source,
        target: rule.side.fill(captures, source),
        permutation: rule.layout === undefined ? null : layoutPermutation(rule.layout, direction),
      };
      break;
    }
    if (!entry) {
      if (ignore.some((p) => matchName(p, source)) || table.unmatched === 'drop') {
        dropped.push(source);
        continue;
      }
      if (table.unmatched !== 'keep') {
        unmatched.push(source);
        continue;
      }
      entry = { source, target: source, permutation: null };
    }
    const previous = targets.get(entry.target);
    if (previous !== undefined) {
      throw new Error(
        `remap (${direction}): '${previous}' and '${source}' both map to '${entry.target}'; make the rules distinguish them`,
      );
    }
    targets.set(entry.target, source);
    entries.push(entry);
  }
  if (unmatched.length) {
    const side = direction === 'import' ? 'ignoreExternal' : 'ignoreInternal';
    throw new Error(
      `remap (${direction}): no rule matches ${unmatched.length} key(s): ${unmatched.slice(0, 8).join(', ')}` +
        `${unmatched.length > 8 ? ', ...' : ''}; add rules for them or list them in the table's ${side}`,
    );
  }
  return { entries, dropped };
}

/** Options of {@link remapStateDict}. */
export interface RemapOptions {
  /** Dispose each source tensor once its target is made (saves memory on big checkpoints). */
  disposeSource?: boolean;
}

/**
 * Renames (and re-lays-out) a state dict. The result's tensors are new (clones or transposes): the caller
 * owns both the input and the output. The whole plan is checked before any tensor is made.
 */
export function remapStateDict(
  tensors: Record<string, tf.Tensor>,
  table: RemapTable,
  direction: RemapDirection,
  options: RemapOptions = {},
): Record<string, tf.Tensor> {
  const plan = planRemap(Object.keys(tensors), table, direction);
  for (const { source, permutation } of plan.entries) {
    if (permutation && tensors[source]!.rank !== permutation.length) {
      throw new Error(
        `remap (${direction}): '${source}' has shape [${tensors[source]!.shape}] but its rule's layout needs rank ` +
          `${permutation.length}; fix the rule's layout`,
      );
    }
  }
  const out: Record<string, tf.Tensor> = {};
  for (const { source, target, permutation } of plan.entries) {
    const tensor = tensors[source]!;
    setOwn(out, target, permutation ? tf.transpose(tensor, permutation) : tf.clone(tensor));
    if (options.disposeSource) tensor.dispose();
  }
  if (options.disposeSource) for (const name of plan.dropped) tensors[name]!.dispose();
  return out;
}

/** External (HF / PyTorch) state dict -> Chimera state dict. */
export function importStateDict(tensors: Record<string, tf.Tensor>, table: RemapTable, options?: RemapOptions) {
  return remapStateDict(tensors, table, 'import', options);
}

/** Chimera state dict -> external (HF / PyTorch) state dict. */
export function exportStateDict(tensors: Record<string, tf.Tensor>, table: RemapTable, options?: RemapOptions) {
  return remapStateDict(tensors, table, 'export', options);
}

/**
 * Nests a table under prefixes on both sides, e.g. a CLIP table under `vision_tower.` -> `image.encoder.` for
 * a LLaVA-style composite. Ignore patterns given as globs are prefixed too; RegExp and predicate ones are
 * applied to the un-prefixed remainder.
 */
export function prefixTable(table: RemapTable, prefixes: { external: string; internal: string }): RemapTable {
  const rules = table.rules.map((rule): RemapRule => {
    const external =
      rule.external instanceof RegExp
        ? new RegExp(`${escapeRegExp(prefixes.external)}(?:${stripAnchors(rule.external.source)})`, rule.external.flags)
        : prefixes.external + rule.external;
    const inverse = rule.inverse && {
      internal: new RegExp(
        `${escapeRegExp(prefixes.internal)}(?:${stripAnchors(rule.inverse.internal.source)})`,
        rule.inverse.internal.flags,
      ),
      external: prefixes.external + rule.inverse.external,
    };
    return { ...rule, external, internal: prefixes.internal + rule.internal, ...(inverse ? { inverse } : {}) };
  });
  const prefixPatterns = (patterns: readonly NamePattern[] | undefined, prefix: string) =>
    patterns?.map((p): NamePattern => {
      if (typeof p === 'string') return prefix + p;
      return (name: string) => name.startsWith(prefix) && matchName(p, name.slice(prefix.length));
    });
  return {
    rules,
    ignoreExternal: prefixPatterns(table.ignoreExternal, prefixes.external),
    ignoreInternal: prefixPatterns(table.ignoreInternal, prefixes.internal),
    unmatched: table.unmatched,
  };
}

/** Concatenates tables (rules and ignore patterns in order); the first table's `unmatched` policy wins. */
export function concatTables(...tables: RemapTable[]): RemapTable {
  return {
    rules: tables.flatMap((t) => t.rules),
    ignoreExternal: tables.flatMap((t) => t.ignoreExternal ?? []),
    ignoreInternal: tables.flatMap((t) => t.ignoreInternal ?? []),
    unmatched: tables[0]?.unmatched,
  };
}

function stripAnchors(source: string): string {
  return source.replace(/^\^/, '').replace(/\$$/, '');
}
