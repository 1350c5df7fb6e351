/**
 * A registry of modality plugins keyed by name (TorchMultimodal passes modalities as a dict). Its order
 * fixes the routing index of each modality in `tokenModality` (0 = text, k = k-th registered), so
 * per-modality weights (MoT, CogVLM's visual expert) stay aligned across batches.
 */
import type * as tf from '@tensorflow/tfjs';
import { matchName, type NamePattern } from '../nn/module';
import { validateModality, type Modality } from './contract';

type AnyModality = Modality<any, any, any>;

/**
 * Modality plugins keyed by name. Registration order fixes each modality's routing index in `tokenModality` (0 =
 * text, k = the k-th registered).
 */
export class ModalityRegistry {
  private readonly byName = new Map<string, AnyModality>();

  constructor(modalities: AnyModality[] | Record<string, AnyModality> = []) {
    if (Array.isArray(modalities)) {
      for (const m of modalities) this.register(m);
    } else {
      for (const [key, m] of Object.entries(modalities)) {
        if (key !== m.name) {
          throw new Error(`ModalityRegistry: key '${key}' holds modality '${m.name}'; use the modality's own name as the key`);
        }
        this.register(m);
      }
    }
  }

  /** Adds a validated modality; throws when its name is already taken. Returns this. */
  register(modality: AnyModality): this {
    validateModality(modality);
    if (this.byName.has(modality.name)) {
      throw new Error(`ModalityRegistry: modality '${modality.name}' is already registered; give the new one another name`);
    }
    this.byName.set(modality.name, modality);
    return this;
  }

  /** Whether a modality called `name` is registered. */
  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The modality called `name`, or an error naming the known ones. */
  get<M extends AnyModality = AnyModality>(name: string): M {
    const modality = this.byName.get(name);
    if (!modality) throw unknownModalityError(name, this.names());
    return modality as M;
  }

  /** Names in registration order. */
  names(): string[] {
    return [...this.byName.keys()];
  }

  /** The `tokenModality` value of a modality: its 1-based registration index (0 is text). */
  routingIndex(name: string): number {
    const index = this.names().indexOf(name);
    if (index < 0) throw unknownModalityError(name, this.names());
    return index + 1;
  }

  /** Parameters of every modality's module, named `<modality>.<role>.<...>`. */
  namedParameters(): [string, tf.Variable][] {
    const out: [string, tf.Variable][] = [];
    for (const [name, m] of this.byName) if (m.module) out.push(...m.module.namedParameters(name));
    return out;
  }

  /** Freezes parameters whose full name matches, e.g. `image.encoder.*` or `audio`; returns how many. */
  freeze(pattern: NamePattern): number {
    return this.setTrainable(pattern, false);
  }

  /** Makes parameters whose full name matches trainable again; returns how many. */
  unfreeze(pattern: NamePattern): number {
    return this.setTrainable(pattern, true);
  }

  private setTrainable(pattern: NamePattern, trainable: boolean): number {
    let changed = 0;
    for (const [name, variable] of this.namedParameters()) {
      if (matchName(pattern, name)) {
        variable.trainable = trainable;
        changed++;
      }
    }
    return changed;
  }
}

/** The error for an unknown modality name, listing the known ones. */
export function unknownModalityError(name: string, known: readonly string[], where = ''): Error {
  return new Error(
    `unknown modality '${name}'${where}; known modalities: ${known.length ? known.join(', ') : '(none)'}. ` +
      'Register it or fix the name.',
  );
}
