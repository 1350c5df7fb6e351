// Chat templates: renders a conversation through a Jinja chat template (@huggingface/jinja), with the variables
// and options of HF transformers' apply_chat_template, and encodes the result with a tokenizer.
import { Template } from '@huggingface/jinja';
import type { TextTokenizer } from './tokenizer';

/** One part of a multimodal message, e.g. `{ type: 'text', text: 'hi' }` or `{ type: 'image' }`. */
export interface ChatContentPart {
  /** Part kind: 'text', or a media kind such as 'image' that the template renders as its placeholder. */
  type: string;
  /** The text of a 'text' part. */
  text?: string;
  [key: string]: unknown;
}

/** One conversation turn, as HF chat templates take it. */
export interface ChatMessage {
  /** 'system', 'user', 'assistant', 'tool', or whatever roles the template knows. */
  role: string;
  /** Plain text, a list of parts (multimodal), or null (e.g. an assistant turn that only calls tools). */
  content: string | readonly ChatContentPart[] | null;
  [key: string]: unknown;
}

/** Options of {@link applyChatTemplate}: generation prompt, special token strings and extra template variables. */
export interface ChatTemplateOptions {
  /** End with the header of an assistant turn so the model writes the reply. Default false. */
  addGenerationPrompt?: boolean;
  /** Cut the text right after the last message's content so the model continues it. Default false. */
  continueFinalMessage?: boolean;
  /** Value of the template's `bos_token` variable. */
  bosToken?: string;
  /** Value of the template's `eos_token` variable. */
  eosToken?: string;
  /** Value of the template's `pad_token` variable. */
  padToken?: string;
  /** Value of the template's `unk_token` variable. */
  unkToken?: string;
  /** Tool (function) descriptions, as JSON schemas, for templates that support tool use. */
  tools?: readonly unknown[];
  /** Documents for retrieval-augmented templates. */
  documents?: readonly unknown[];
  /** Further template variables (e.g. `enable_thinking`, `date_string`). */
  variables?: Readonly<Record<string, unknown>>;
}

/**
 * Options of a tokenizer's `applyChatTemplate`: the template options plus which template to use. Token strings
 * default to the tokenizer's own.
 */
export interface TokenizerChatOptions extends ChatTemplateOptions {
  /** Use this template instead of the tokenizer's own. */
  template?: string;
  /** Pick one of the tokenizer's named templates (tokenizer_config.json may hold e.g. `default` and `tool_use`). */
  templateName?: string;
}

const MAX_CACHED_TEMPLATES = 16;
const compiledTemplates = new Map<string, Template>();

function compile(template: string): Template {
  const cached = compiledTemplates.get(template);
  if (cached) return cached;
  let compiledTemplate: Template;
  try {
    compiledTemplate = new Template(template);
  } catch (error) {
    throw new Error(
      `chat template: the Jinja template does not parse (${(error as Error).message}); fix the template text`,
    );
  }
  if (compiledTemplates.size >= MAX_CACHED_TEMPLATES) {
    compiledTemplates.delete(compiledTemplates.keys().next().value!);
  }
  compiledTemplates.set(template, compiledTemplate);
  return compiledTemplate;
}

function assertMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages)) {
    throw new Error(`chat template: messages must be an array of { role, content }, got ${typeof messages}`);
  }
  messages.forEach((message, i) => {
    if (message === null || typeof message !== 'object' || typeof message.role !== 'string') {
      throw new Error(
        `chat template: message ${i} must be an object with a string role, got ${JSON.stringify(message)}`,
      );
    }
  });
}

function finalMessageText(messages: readonly ChatMessage[]): string {
  const last = messages[messages.length - 1];
  if (!last) throw new Error('chat template: continueFinalMessage needs at least one message');
  if (typeof last.content === 'string') return last.content;
  const textParts = (last.content ?? []).filter((part) => typeof part.text === 'string');
  const lastText = textParts[textParts.length - 1]?.text;
  if (lastText === undefined) {
    throw new Error('chat template: continueFinalMessage needs the last message to contain text');
  }
  return lastText;
}

/** Renders `messages` with the Jinja `template`, as HF transformers' apply_chat_template(tokenize=False) does. */
export function applyChatTemplate(
  template: string,
  messages: readonly ChatMessage[],
  options: ChatTemplateOptions = {},
): string {
  if (typeof template !== 'string' || template.length === 0) {
    throw new Error('applyChatTemplate: the template must be a non-empty Jinja string');
  }
  assertMessages(messages);
  if (options.addGenerationPrompt && options.continueFinalMessage) {
    throw new Error(
      'applyChatTemplate: addGenerationPrompt starts a new assistant turn and continueFinalMessage continues the ' +
        'last one; set only one of them',
    );
  }
  const context: Record<string, unknown> = {
    ...options.variables,
    messages,
    add_generation_prompt: options.addGenerationPrompt ?? false,
  };
  const specials = {
    bos_token: options.bosToken,
    eos_token: options.eosToken,
    pad_token: options.padToken,
    unk_token: options.unkToken,
    tools: options.tools,
    documents: options.documents,
  };
  for (const [name, value] of Object.entries(specials)) if (value !== undefined) context[name] = value;

  let rendered: string;
  try {
    rendered = compile(template).render(context);
  } catch (error) {
    throw new Error(`chat template: rendering failed: ${(error as Error).message}`);
  }
  if (options.continueFinalMessage) {
    const finalText = finalMessageText(messages);
    const at = rendered.lastIndexOf(finalText);
    if (at < 0) {
      throw new Error('chat template: continueFinalMessage could not find the last message in the rendered text');
    }
    rendered = rendered.slice(0, at + finalText.length);
  }
  return rendered;
}

/**
 * Picks a template (explicit, named, `tool_use` when tools are given, else `default`) and renders it with the
 * tokenizer's special-token strings. `templates` maps names to templates.
 */
export function renderChat(
  tokenizer: TextTokenizer,
  templates: Readonly<Record<string, string>>,
  messages: readonly ChatMessage[],
  options: TokenizerChatOptions = {},
): string {
  let template = options.template;
  if (template === undefined && options.templateName !== undefined) {
    template = templates[options.templateName];
    if (template === undefined) {
      const names = Object.keys(templates);
      throw new Error(
        `applyChatTemplate: the tokenizer has no chat template named "${options.templateName}"; ` +
          (names.length ? `it has ${names.map((n) => `"${n}"`).join(', ')}` : 'it has no chat template at all'),
      );
    }
  }
  if (template === undefined && options.tools !== undefined) template = templates['tool_use'];
  template ??= templates['default'];
  if (template === undefined) {
    throw new Error(
      'applyChatTemplate: this tokenizer has no chat template (no chat_template in tokenizer_config.json and no ' +
        'chat_template.jinja); pass one with { template: "..." } or call applyChatTemplate(template, messages)',
    );
  }
  return applyChatTemplate(template, messages, {
    ...options,
    bosToken: options.bosToken ?? tokenizer.bosToken,
    eosToken: options.eosToken ?? tokenizer.eosToken,
    padToken: options.padToken ?? tokenizer.padToken,
  });
}

/** renderChat, then encode without adding special tokens: the template already wrote them. */
export function encodeChat(
  tokenizer: TextTokenizer,
  templates: Readonly<Record<string, string>>,
  messages: readonly ChatMessage[],
  options: TokenizerChatOptions = {},
): number[] {
  return tokenizer.encode(renderChat(tokenizer, templates, messages, options), { addSpecialTokens: false });
}

/** Normalises tokenizer_config.json's chat_template (a string, or a list of { name, template }) to a name map. */
export function normalizeChatTemplates(value: unknown, source: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value === 'string') return { default: value };
  if (Array.isArray(value)) {
    const templates: Record<string, string> = {};
    for (const entry of value) {
      const { name, template } = (entry ?? {}) as { name?: unknown; template?: unknown };
      if (typeof name !== 'string' || typeof template !== 'string') {
        throw new Error(
          `${source}: chat_template entries must be { name: string, template: string }, got ${JSON.stringify(entry)}`,
        );
      }
      templates[name] = template;
    }
    return templates;
  }
  if (typeof value === 'object') {
    const templates: Record<string, string> = {};
    for (const [name, template] of Object.entries(value)) {
      if (typeof template !== 'string') throw new Error(`${source}: chat template "${name}" must be a string`);
      templates[name] = template;
    }
    return templates;
  }
  throw new Error(`${source}: chat_template must be a string or a list of { name, template }, got ${typeof value}`);
}
