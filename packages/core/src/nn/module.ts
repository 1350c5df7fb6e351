/**
 * The module system: a Module owns named parameters (tf.Variable) and named child modules; its state dict
 * is derived by walking them into dotted names (`layers.0.self_attn.q_proj.weight`), the way tinygrad and
 * PyTorch do. Registered names follow the checkpoints they load, so weights map by rule.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Selects parameters by dotted name: a glob (`*` within one segment, `**` across; a bare prefix selects everything
 * below it), a RegExp, or a predicate.
 */
export type NamePattern = string | RegExp | ((name: string) => boolean);

/** Options of {@link Module.loadStateDict}. */
export interface LoadStateDictOptions {
  /** Every parameter must be present and no extra keys given (default true). */
  strict?: boolean;
}

/** What {@link Module.loadStateDict} skipped (only non-empty with `strict: false`). */
export interface LoadStateDictResult {
  /** The module's keys that the given dict lacked (left unchanged). */
  missing: string[];
  /** Keys in the given dict that the module does not have (ignored). */
  unexpected: string[];
}

/** One parameter in {@link Module.parameterSummary}. */
export interface ParameterInfo {
  /** Dotted name (the first one, when the parameter is shared). */
  name: string;
  /** Shape of the variable. */
  shape: number[];
  /** Number of elements. */
  count: number;
  /** Whether optimizers update it (false once frozen). */
  trainable: boolean;
}

let variableCounter = 0;

/** Glob over dotted names: `*` matches within one segment, `**` across segments. */
export function globToRegExp(glob: string): RegExp {
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i]!;
    if (ch === '*' && glob[i + 1] === '*') {
      source += '.*';
      i++;
    } else if (ch === '*') source += '[^.]*';
    else source += ch.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

/** Whether a dotted parameter name matches `pattern` (see {@link NamePattern}). */
export function matchName(pattern: NamePattern, name: string): boolean {
  if (typeof pattern === 'function') return pattern(name);
  if (pattern instanceof RegExp) return pattern.test(name);
  // A bare prefix such as `image.encoder` (or `layers.*.mlp`) also selects everything below it.
  return globToRegExp(pattern).test(name) || globToRegExp(`${pattern}.**`).test(name);
}

/**
 * Base class of every layer and model: owns named parameters (tf.Variable), buffers and child modules, and derives
 * the state dict, freezing and parameter counts from them. Subclasses register what they own in their constructor and
 * implement their own `forward`.
 */
export abstract class Module {
  private readonly parameterMap = new Map<string, tf.Variable>();
  private readonly bufferMap = new Map<string, tf.Tensor>();
  private readonly childMap = new Map<string, Module>();
  /** Train mode enables dropout and similar; set through train()/eval(). */
  training = true;

  /** Registers a parameter owned by this module; the tensor becomes a tf.Variable (the input is disposed). */
  protected addParameter(name: string, init: tf.Tensor, trainable = true): tf.Variable {
    this.assertFreeName(name);
    const variable = tf.variable(init, trainable, `chimera_${variableCounter++}_${name}`);
    init.dispose();
    this.parameterMap.set(name, variable);
    return variable;
  }

  /**
   * Swaps a registered parameter for a new tensor, possibly of another shape (e.g. resizing a vocabulary). The
   * old variable is disposed and the trainable flag kept; optimizers holding the old variable must be rebuilt.
   */
  protected replaceParameter(name: string, init: tf.Tensor): tf.Variable {
    const old = this.parameterMap.get(name);
    if (!old) throw new Error(`${this.constructor.name}: no parameter '${name}' to replace`);
    const variable = tf.variable(init, old.trainable, `chimera_${variableCounter++}_${name}`);
    init.dispose();
    old.dispose();
    this.parameterMap.set(name, variable);
    return variable;
  }

  /** Registers persistent non-trainable state (running statistics, EMA codebooks); part of the state dict. */
  protected addBuffer(name: string, init: tf.Tensor): tf.Variable {
    this.assertFreeName(name);
    const variable = tf.variable(init, false, `chimera_${variableCounter++}_${name}`);
    init.dispose();
    this.bufferMap.set(name, variable);
    return variable;
  }

  /**
   * Registers `module` as the child `name` (no dots) and returns it, so `this.fc1 = this.addModule('fc1', new
   * Linear(...))` reads as one line.
   */
  protected addModule<M extends Module>(name: string, module: M): M {
    this.assertFreeName(name);
    this.childMap.set(name, module);
    return module;
  }

  /** Registers a list of children under `name.0`, `name.1`, ... (PyTorch ModuleList naming). */
  protected addModuleList<M extends Module>(name: string, modules: M[]): M[] {
    const list = new ModuleList(modules);
    this.addModule(name, list);
    return modules;
  }

  private assertFreeName(name: string): void {
    if (name.includes('.') || name.length === 0) {
      throw new Error(`${this.constructor.name}: invalid child or parameter name '${name}' (no dots, not empty)`);
    }
    if (this.parameterMap.has(name) || this.bufferMap.has(name) || this.childMap.has(name)) {
      throw new Error(`${this.constructor.name}: '${name}' is already registered`);
    }
  }

  /** Direct children as [name, module] pairs, in registration order. */
  children(): [string, Module][] {
    return [...this.childMap.entries()];
  }

  /** Every module in the tree with its dotted path ('' for this one). */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, child] of this.childMap) out.push(...child.namedModules(join(prefix, name)));
    return out;
  }

  /**
   * Every parameter in the tree as [dotted name, variable], `prefix` prepended; a shared (tied) parameter appears
   * under each of its names.
   */
  namedParameters(prefix = ''): [string, tf.Variable][] {
    const out: [string, tf.Variable][] = [];
    for (const [name, variable] of this.parameterMap) out.push([join(prefix, name), variable]);
    for (const [name, child] of this.childMap) out.push(...child.namedParameters(join(prefix, name)));
    return out;
  }

  /** Every buffer in the tree as [dotted name, variable], `prefix` prepended. */
  namedBuffers(prefix = ''): [string, tf.Variable][] {
    const out: [string, tf.Variable][] = [];
    for (const [name, buffer] of this.bufferMap) out.push([join(prefix, name), buffer as tf.Variable]);
    for (const [name, child] of this.childMap) out.push(...child.namedBuffers(join(prefix, name)));
    return out;
  }

  /** The variables an optimizer should update: trainable parameters only, in a stable order, each once. */
  trainableVariables(): tf.Variable[] {
    return this.uniqueParameters()
      .filter(([, v]) => v.trainable)
      .map(([, v]) => v);
  }

  /** Names, shapes and counts of parameters (all by default); a shared parameter is listed once, by its first name. */
  parameterSummary(options: { trainableOnly?: boolean } = {}): ParameterInfo[] {
    return this.uniqueParameters()
      .filter(([, v]) => !options.trainableOnly || v.trainable)
      .map(([name, v]) => ({ name, shape: v.shape, count: v.size, trainable: v.trainable }));
  }

  /** namedParameters without repeats: a module registered under two names (tied weights) counts once. */
  private uniqueParameters(): [string, tf.Variable][] {
    const seen = new Set<tf.Variable>();
    return this.namedParameters().filter(([, v]) => !seen.has(v) && (seen.add(v), true));
  }

  /**
   * Number of parameter elements in the tree (trainable ones only with `trainableOnly`); shared parameters count
   * once.
   */
  countParameters(options: { trainableOnly?: boolean } = {}): number {
    return this.parameterSummary(options).reduce((sum, p) => sum + p.count, 0);
  }

  /** Dotted name -> tensor for every parameter and buffer. The tensors are the live variables: do not dispose. */
  stateDict(): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    for (const [name, v] of this.namedParameters()) out[name] = v;
    for (const [name, v] of this.namedBuffers()) out[name] = v;
    return out;
  }

  /**
   * Copies values into parameters and buffers. Missing, unexpected and wrong-shape keys are reported together
   * in one error; wrong shapes are always an error, missing/unexpected only when strict. Nothing is assigned
   * unless the whole dict is valid. The caller keeps ownership of the given tensors.
   */
  loadStateDict(state: Record<string, tf.Tensor>, options: LoadStateDictOptions = {}): LoadStateDictResult {
    const strict = options.strict ?? true;
    const own = this.stateDict();
    // Object.hasOwn, not `in`: keys such as 'constructor' must not resolve to Object.prototype members.
    const missing = Object.keys(own).filter((k) => !Object.hasOwn(state, k));
    const unexpected = Object.keys(state).filter((k) => !Object.hasOwn(own, k));
    const wrongShape = Object.keys(state)
      .filter((k) => Object.hasOwn(own, k) && !sameShape(own[k]!.shape, state[k]!.shape))
      .map((k) => `${k}: expected [${own[k]!.shape.join(', ')}], got [${state[k]!.shape.join(', ')}]`);
    const problems: string[] = [];
    if (wrongShape.length) problems.push(`wrong shape (${wrongShape.length}): ${wrongShape.join('; ')}`);
    if (strict && missing.length) problems.push(`missing (${missing.length}): ${missing.join(', ')}`);
    if (strict && unexpected.length) problems.push(`unexpected (${unexpected.length}): ${unexpected.join(', ')}`);
    if (problems.length) {
      throw new Error(
        `${this.constructor.name}.loadStateDict failed:\n  ${problems.join('\n  ')}\n` +
          (wrongShape.length ? '' : 'Pass { strict: false } to load a partial state dict (e.g. trainable-only).'),
      );
    }
    for (const [name, tensor] of Object.entries(state)) {
      if (!Object.hasOwn(own, name)) continue;
      const target = own[name] as tf.Variable;
      // Inside tidy so a cast copy is released once the variable holds its data.
      tf.tidy(() => target.assign(tensor.dtype === target.dtype ? tensor : tf.cast(tensor, target.dtype)));
    }
    return { missing, unexpected };
  }

  /** Freezes parameters whose dotted name matches (a glob such as `image.encoder.*`, a RegExp or a predicate). */
  freeze(pattern: NamePattern = '**'): number {
    return this.setTrainable(pattern, false);
  }

  /** Makes parameters whose dotted name matches trainable again (default: all); returns how many matched. */
  unfreeze(pattern: NamePattern = '**'): number {
    return this.setTrainable(pattern, true);
  }

  private setTrainable(pattern: NamePattern, trainable: boolean): number {
    let changed = 0;
    for (const [name, v] of this.namedParameters()) {
      if (matchName(pattern, name)) {
        v.trainable = trainable;
        changed++;
      }
    }
    return changed;
  }

  /** Sets train mode (`mode` true) or eval mode on this module and every descendant; returns this. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  /** Eval mode for the whole tree (dropout off); same as `train(false)`. */
  eval(): this {
    return this.train(false);
  }

  /** Frees every parameter and buffer in the tree. The module is unusable afterwards. */
  dispose(): void {
    // A child shared by two parents is reached twice; disposing a variable twice throws.
    for (const v of this.parameterMap.values()) if (!v.isDisposed) v.dispose();
    for (const b of this.bufferMap.values()) if (!b.isDisposed) b.dispose();
    for (const child of this.childMap.values()) child.dispose();
    this.parameterMap.clear();
    this.bufferMap.clear();
    this.childMap.clear();
  }
}

/** A list of children named by index, so state-dict keys read `layers.0.mlp.up_proj.weight`. */
export class ModuleList<M extends Module = Module> extends Module {
  /** The children, in order (child `i` is `items[i]`). */
  readonly items: M[];
  constructor(items: M[]) {
    super();
    this.items = items;
    items.forEach((m, i) => this.addModule(String(i), m));
  }
}

function join(prefix: string, name: string): string {
  return prefix ? `${prefix}.${name}` : name;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
