// The special-token registry: the conventional strings of multimodal markers by role, lookup on a tokenizer, and
// adding the missing ones.
import type { TextTokenizer } from './tokenizer';

/** The marker roles {@link STANDARD_SPECIAL_TOKENS} defines (media placeholders and boundaries, padding). */
export type StandardSpecialTokenRole =
  | 'image'
  | 'imageStart'
  | 'imageEnd'
  | 'imageNewline'
  | 'endOfChunk'
  | 'video'
  | 'audio'
  | 'audioStart'
  | 'audioEnd'
  | 'pad';

/** A standard role, or any role a model defines for itself. */
export type SpecialTokenRole = StandardSpecialTokenRole | (string & {});

/** A special token: its role, its string and what it is for. */
export interface SpecialTokenDefinition {
  /** The role it plays. */
  readonly role: SpecialTokenRole;
  /** The token string, e.g. `<image>`. */
  readonly content: string;
  /** One line on what it marks. */
  readonly description: string;
}

/** The conventional strings of multimodal markers by role (`<image>`, `<boi>`, `<|endofchunk|>`, `<audio>`, ...). */
export const STANDARD_SPECIAL_TOKENS: Readonly<Record<StandardSpecialTokenRole, SpecialTokenDefinition>> = {
  image: { role: 'image', content: '<image>', description: 'image placeholder, expanded to its features (LLaVA)' },
  imageStart: { role: 'imageStart', content: '<boi>', description: 'begin of image (Chameleon / Janus style)' },
  imageEnd: { role: 'imageEnd', content: '<eoi>', description: 'end of image' },
  imageNewline: {
    role: 'imageNewline',
    content: '<image-newline>',
    description: 'end of a row of image patches (Fuyu)',
  },
  endOfChunk: { role: 'endOfChunk', content: '<|endofchunk|>', description: 'end of a media-text chunk (Flamingo)' },
  video: { role: 'video', content: '<video>', description: 'video placeholder' },
  audio: { role: 'audio', content: '<audio>', description: 'audio placeholder (Audio Flamingo)' },
  audioStart: { role: 'audioStart', content: '<boa>', description: 'begin of audio' },
  audioEnd: { role: 'audioEnd', content: '<eoa>', description: 'end of audio' },
  pad: { role: 'pad', content: '<pad>', description: 'padding' },
};

/**
 * Role -> token string, starting from the standard ones. A model that spells a marker its own way overrides it
 * (`new SpecialTokenRegistry({ image: '<|image_pad|>' })`) or defines new roles with `define`.
 */
export class SpecialTokenRegistry {
  private readonly byRole = new Map<string, SpecialTokenDefinition>();

  constructor(overrides: Readonly<Record<string, string>> = {}) {
    for (const definition of Object.values(STANDARD_SPECIAL_TOKENS)) this.byRole.set(definition.role, definition);
    for (const [role, content] of Object.entries(overrides)) this.define(role, content);
  }

  /** Adds or redefines a role. Two roles may not share a string. */
  define(role: SpecialTokenRole, content: string, description?: string): this {
    if (typeof content !== 'string' || content.length === 0) {
      throw new Error(
        `SpecialTokenRegistry.define: role "${role}" needs a non-empty token string, got ${JSON.stringify(content)}`,
      );
    }
    const owner = this.roleOf(content);
    if (owner !== undefined && owner !== role) {
      throw new Error(
        `SpecialTokenRegistry.define: "${content}" already belongs to role "${owner}"; pick another string for "${role}"`,
      );
    }
    const previous = this.byRole.get(role);
    this.byRole.set(role, { role, content, description: description ?? previous?.description ?? role });
    return this;
  }

  /** Every defined role, in definition order. */
  get roles(): SpecialTokenRole[] {
    return [...this.byRole.keys()];
  }

  /** The definition of a role; throws naming the known roles when it is unknown. */
  definition(role: SpecialTokenRole): SpecialTokenDefinition {
    const definition = this.byRole.get(role);
    if (!definition) {
      throw new Error(
        `SpecialTokenRegistry: unknown role "${role}"; known roles: ${this.roles.join(', ')}; add it with define()`,
      );
    }
    return definition;
  }

  /** The token string of a role. */
  content(role: SpecialTokenRole): string {
    return this.definition(role).content;
  }

  /** The token strings of several roles, in order. */
  contents(roles: readonly SpecialTokenRole[]): string[] {
    return roles.map((role) => this.content(role));
  }

  /** The role a token string plays, if any. */
  roleOf(content: string): SpecialTokenRole | undefined {
    for (const definition of this.byRole.values()) if (definition.content === content) return definition.role;
    return undefined;
  }

  /** The id of a role's token in `tokenizer`, if it has it. `pad` prefers the tokenizer's own pad token. */
  idOf(tokenizer: TextTokenizer, role: SpecialTokenRole): number | undefined {
    if (role === 'pad' && tokenizer.padTokenId !== undefined) return tokenizer.padTokenId;
    return tokenizer.tokenToId(this.content(role));
  }

  /** The role of a token id in `tokenizer`, if it plays one. */
  roleOfId(tokenizer: TextTokenizer, id: number): SpecialTokenRole | undefined {
    if (id === tokenizer.padTokenId) return 'pad';
    const token = tokenizer.idToToken(id);
    return token === undefined ? undefined : this.roleOf(token);
  }

  /**
   * Makes sure `tokenizer` has the tokens of `roles`, adding the missing ones as special tokens, and returns their
   * ids by role. Adding grows the vocabulary, so with a model call
   * `addTokensToModel(tokenizer, model, registry.contents(roles))` instead, then `idOf` for the ids.
   */
  ensure(tokenizer: TextTokenizer, roles: readonly SpecialTokenRole[]): Record<string, number> {
    const ids: Record<string, number> = {};
    const missing: SpecialTokenRole[] = [];
    for (const role of roles) {
      if (role === 'pad' && tokenizer.padTokenId !== undefined) {
        ids[role] = tokenizer.padTokenId;
        continue;
      }
      const id = tokenizer.specialTokens.get(this.content(role));
      if (id === undefined) missing.push(role);
      else ids[role] = id;
    }
    // A token already in the vocabulary as a plain token keeps its id and becomes special.
    const added = missing.length ? tokenizer.addTokens(this.contents(missing), { special: true }) : [];
    missing.forEach((role, i) => (ids[role] = added[i]!));
    return ids;
  }
}
