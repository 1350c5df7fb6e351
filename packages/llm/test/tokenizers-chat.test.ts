import { describe, it, expect } from 'vitest';
import { applyChatTemplate, type ChatMessage } from '../src/tokenizers/chat-template';
import { ByteTokenizer } from '../src/tokenizers/byte-tokenizer';
import { HFTokenizer } from '../src/tokenizers/hf-tokenizer';
import { byteLevelBpeFiles, sentencePieceBpeFiles, CHATML_TEMPLATE } from './tokenizers-fixtures';

const conversation: ChatMessage[] = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'What is 2+2?' },
  { role: 'assistant', content: '4' },
  { role: 'user', content: 'And 3+3?' },
];

const CHATML_EXPECTED =
  '<|im_start|>system\nYou are terse.<|im_end|>\n' +
  '<|im_start|>user\nWhat is 2+2?<|im_end|>\n' +
  '<|im_start|>assistant\n4<|im_end|>\n' +
  '<|im_start|>user\nAnd 3+3?<|im_end|>\n';

const LLAMA2_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'].strip() + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'].strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

describe('applyChatTemplate (string)', () => {
  it('renders a ChatML conversation, with and without the generation prompt', () => {
    expect(applyChatTemplate(CHATML_TEMPLATE, conversation)).toBe(CHATML_EXPECTED);
    expect(applyChatTemplate(CHATML_TEMPLATE, conversation, { addGenerationPrompt: true })).toBe(
      CHATML_EXPECTED + '<|im_start|>assistant\n',
    );
    expect(applyChatTemplate(CHATML_TEMPLATE, [])).toBe('');
  });

  it('passes BOS/EOS strings and surfaces raise_exception as an error', () => {
    const messages: ChatMessage[] = [
      { role: 'user', content: ' hi ' },
      { role: 'assistant', content: 'hello' },
      { role: 'user', content: 'how?' },
    ];
    expect(applyChatTemplate(LLAMA2_TEMPLATE, messages, { bosToken: '<s>', eosToken: '</s>' })).toBe(
      '<s>[INST] hi [/INST] hello </s>[INST] how? [/INST]',
    );
    expect(() =>
      applyChatTemplate(LLAMA2_TEMPLATE, [{ role: 'assistant', content: 'x' }], { bosToken: '<s>' }),
    ).toThrow(/rendering failed: Conversation roles must alternate/);
  });

  it('renders multimodal content parts, tools and extra variables', () => {
    const template =
      '{% if tools %}tools={{ tools|length }};{% endif %}{% if think %}<think>{% endif %}' +
      "{% for m in messages %}{{ m.role }}:{% for part in m.content %}{% if part.type == 'image' %}<image>{% else %}{{ part.text }}{% endif %}{% endfor %}|{% endfor %}";
    const messages: ChatMessage[] = [
      { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'what is this?' }] },
    ];
    expect(applyChatTemplate(template, messages)).toBe('user:<image>what is this?|');
    expect(
      applyChatTemplate(template, messages, { tools: [{ name: 'a' }, { name: 'b' }], variables: { think: true } }),
    ).toBe('tools=2;<think>user:<image>what is this?|');
  });

  it('continues the final message instead of closing it', () => {
    const messages: ChatMessage[] = [...conversation, { role: 'assistant', content: 'The answer is' }];
    expect(applyChatTemplate(CHATML_TEMPLATE, messages, { continueFinalMessage: true })).toBe(
      CHATML_EXPECTED + '<|im_start|>assistant\nThe answer is',
    );
    expect(() =>
      applyChatTemplate(CHATML_TEMPLATE, messages, { continueFinalMessage: true, addGenerationPrompt: true }),
    ).toThrow(/set only one of them/);
  });

  it('gives clear errors for bad templates and messages', () => {
    expect(() => applyChatTemplate('{% for m in messages %}', conversation)).toThrow(/does not parse/);
    expect(() => applyChatTemplate('', conversation)).toThrow(/non-empty Jinja string/);
    expect(() => applyChatTemplate(CHATML_TEMPLATE, [{ content: 'x' } as unknown as ChatMessage])).toThrow(
      /message 0 must be an object with a string role/,
    );
  });
});

describe('tokenizer.applyChatTemplate (ids)', () => {
  it('encodes the rendered ChatML text with the special tokens as single ids', () => {
    const files = byteLevelBpeFiles();
    const tokenizer = HFTokenizer.fromJSON(files.tokenizerJson, files.tokenizerConfig);
    const ids = tokenizer.applyChatTemplate(conversation, { addGenerationPrompt: true });
    expect(ids).toEqual(tokenizer.encode(CHATML_EXPECTED + '<|im_start|>assistant\n', { addSpecialTokens: false }));
    expect(ids.filter((id) => id === tokenizer.tokenToId('<|im_start|>'))).toHaveLength(5);
    expect(ids.filter((id) => id === tokenizer.eosTokenId)).toHaveLength(4);
    expect(tokenizer.decode(ids)).toBe(CHATML_EXPECTED + '<|im_start|>assistant\n');
  });

  it('fills in the tokenizer BOS/EOS and does not add a second BOS', () => {
    const files = sentencePieceBpeFiles();
    const tokenizer = HFTokenizer.fromJSON(files.tokenizerJson, {
      ...files.tokenizerConfig,
      chat_template: LLAMA2_TEMPLATE,
    });
    const ids = tokenizer.applyChatTemplate([
      { role: 'user', content: 'hello' },
      { role: 'assistant', content: 'world' },
    ]);
    expect(ids[0]).toBe(1);
    expect(ids.filter((id) => id === 1)).toHaveLength(1);
    expect(ids.filter((id) => id === 2)).toHaveLength(1);
    expect(tokenizer.decode(ids)).toBe('<s> [INST] hello [/INST] world </s>');
  });

  it('selects named templates and explains a missing one', () => {
    const tokenizer = new ByteTokenizer({ chatTemplate: { default: CHATML_TEMPLATE, short: '{{ messages|length }}' } });
    expect(tokenizer.decode(tokenizer.applyChatTemplate(conversation, { templateName: 'short' }))).toBe('4');
    expect(tokenizer.decode(tokenizer.applyChatTemplate(conversation))).toBe(CHATML_EXPECTED);
    expect(() => tokenizer.applyChatTemplate(conversation, { templateName: 'tool_use' })).toThrow(
      /no chat template named "tool_use"; it has "default", "short"/,
    );
  });

  it('errors clearly when the tokenizer has no template, and accepts one passed in', () => {
    const tokenizer = new ByteTokenizer();
    expect(tokenizer.chatTemplate).toBeUndefined();
    expect(() => tokenizer.applyChatTemplate(conversation)).toThrow(/this tokenizer has no chat template/);
    const ids = tokenizer.applyChatTemplate(conversation, { template: CHATML_TEMPLATE });
    expect(tokenizer.decode(ids)).toBe(CHATML_EXPECTED);
  });
});
