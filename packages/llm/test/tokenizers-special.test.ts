import { describe, it, expect } from 'vitest';
import { SpecialTokenRegistry, STANDARD_SPECIAL_TOKENS } from '../src/tokenizers/special-tokens';
import { ByteTokenizer } from '../src/tokenizers/byte-tokenizer';
import { HFTokenizer } from '../src/tokenizers/hf-tokenizer';
import { byteLevelBpeFiles } from './tokenizers-fixtures';

describe('SpecialTokenRegistry', () => {
  it('knows the conventional strings of the multimodal markers', () => {
    const registry = new SpecialTokenRegistry();
    expect(registry.content('image')).toBe('<image>');
    expect(registry.content('imageStart')).toBe('<boi>');
    expect(registry.content('imageEnd')).toBe('<eoi>');
    expect(registry.content('endOfChunk')).toBe('<|endofchunk|>');
    expect(registry.content('imageNewline')).toBe('<image-newline>');
    expect(registry.content('audio')).toBe('<audio>');
    expect(registry.content('pad')).toBe('<pad>');
    expect(registry.roleOf('<|endofchunk|>')).toBe('endOfChunk');
    expect(registry.roleOf('<nothing>')).toBeUndefined();
    const contents = Object.values(STANDARD_SPECIAL_TOKENS).map((d) => d.content);
    expect(new Set(contents).size).toBe(contents.length);
    expect(() => registry.content('hologram')).toThrow(/unknown role "hologram"; known roles: image, /);
  });

  it('takes overrides and new roles, refusing a string that two roles would share', () => {
    const registry = new SpecialTokenRegistry({ image: '<|image_pad|>' }).define('hologram', '<holo>', 'a 3-D scene');
    expect(registry.content('image')).toBe('<|image_pad|>');
    expect(registry.roleOf('<image>')).toBeUndefined();
    expect(registry.definition('hologram')).toEqual({
      role: 'hologram',
      content: '<holo>',
      description: 'a 3-D scene',
    });
    expect(() => registry.define('video', '<holo>')).toThrow(/"<holo>" already belongs to role "hologram"/);
    expect(() => registry.define('video', '')).toThrow(/non-empty token string/);
  });

  it('ensures roles on a tokenizer: adds the missing ones as special, keeps the present ones', () => {
    const tokenizer = new ByteTokenizer({ additionalSpecialTokens: ['<image>'] }); // <image> = 259
    const registry = new SpecialTokenRegistry();
    expect(registry.idOf(tokenizer, 'endOfChunk')).toBeUndefined();
    const ids = registry.ensure(tokenizer, ['image', 'endOfChunk', 'imageNewline', 'pad']);
    expect(ids).toEqual({ image: 259, endOfChunk: 260, imageNewline: 261, pad: 258 });
    expect(tokenizer.vocabSize).toBe(262);
    expect(tokenizer.specialTokens.get('<|endofchunk|>')).toBe(260);
    expect(registry.ensure(tokenizer, ['image', 'endOfChunk'])).toEqual({ image: 259, endOfChunk: 260 });
    expect(tokenizer.vocabSize).toBe(262);
    expect(registry.roleOfId(tokenizer, 260)).toBe('endOfChunk');
    expect(registry.roleOfId(tokenizer, 258)).toBe('pad');
    expect(registry.roleOfId(tokenizer, 65)).toBeUndefined();
    expect(tokenizer.decode(tokenizer.encode('<image>x<|endofchunk|>'), { skipSpecialTokens: true })).toBe('x');
  });

  it('uses the tokenizer pad token for the pad role, and promotes plain added tokens to special', () => {
    const files = byteLevelBpeFiles();
    const tokenizer = HFTokenizer.fromJSON(files.tokenizerJson, files.tokenizerConfig);
    const registry = new SpecialTokenRegistry();
    expect(registry.idOf(tokenizer, 'pad')).toBe(261); // <|endoftext|>, not a new <pad>
    tokenizer.addTokens(['<audio>']);
    expect(tokenizer.specialTokens.has('<audio>')).toBe(false);
    const ids = registry.ensure(tokenizer, ['audio', 'pad']);
    expect(ids).toEqual({ audio: 264, pad: 261 });
    expect(tokenizer.specialTokens.get('<audio>')).toBe(264);
    expect(tokenizer.vocabSize).toBe(265);
  });
});
