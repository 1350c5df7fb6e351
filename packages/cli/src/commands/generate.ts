// `chimera generate`: text from an exported LLM folder (savePretrained's or an HF download) with its tokenizer,
// through @chimera/llm's loadPretrained and generate (KV cache, greedy or sampled, stops at the config's EOS).
import type { GenerateOptions, TextTokenizer } from '@chimera/llm';
import { UsageError, type Command, type CliIO, type ParsedCommandArgs } from '../command';
import { booleanFlag, numberFlag, stringFlag, stringList } from '../flags';
import { startBackend, BACKEND_FLAG, BACKEND_HELP } from '../backend-flag';

const HELP = `Usage: chimera generate <model> --prompt TEXT [--prompt TEXT ...] [flags]

Generates text from an LLM folder in the HF layout (config.json, safetensors, tokenizer.json): a
savePretrained export, 'chimera convert --to hf' output, or a downloaded model.

Arguments:
  <model>              the model folder

Flags:
  --prompt TEXT        a prompt; repeat for a batch (rows are left-padded and decoded together)
  --max-new-tokens N   tokens to generate per prompt (default 64)
  --temperature T      sample at temperature T > 0 (default: greedy)
  --top-k K            sample from the K most likely tokens
  --top-p P            sample from the smallest set with probability >= P (0 < P <= 1)
  --seed S             seed for sampling (the same seed gives the same text)
  --chat               wrap each prompt as a user message in the tokenizer's chat template
  --system TEXT        with --chat: a system message first
  --tokenizer DIR      a folder with tokenizer.json (default: the model folder)
  --json               print one JSON object (prompts, token ids, text, finish reasons) instead of text
${BACKEND_HELP}
  -h, --help           this help

One prompt streams its text as it is generated; several print each result when all are done.

Examples:
  chimera generate models/SmolLM2-135M --prompt "The capital of France is" --max-new-tokens 20
  chimera generate exports/my-llm --chat --prompt "Name three colours." --temperature 0.7 --seed 1
`;

async function run({ values, positionals }: ParsedCommandArgs, io: CliIO): Promise<number> {
  const prompts = stringList(values, 'prompt');
  if (prompts.length === 0) throw new UsageError('--prompt is required (repeat it for several prompts)');
  const maxNewTokens = numberFlag(values, 'max-new-tokens', { integer: true, min: 1 }) ?? 64;
  const temperature = numberFlag(values, 'temperature', { above: 0 });
  const topK = numberFlag(values, 'top-k', { integer: true, min: 1 });
  const topP = numberFlag(values, 'top-p', { above: 0, max: 1 });
  const seed = numberFlag(values, 'seed', { integer: true, min: 0 });
  const chat = booleanFlag(values, 'chat');
  const system = stringFlag(values, 'system');
  if (system !== undefined && !chat) throw new UsageError('--system needs --chat (it is a chat message)');
  const json = booleanFlag(values, 'json');
  const modelDir = positionals[0]!;

  await startBackend(values);
  const llm = await import('@chimera/llm');
  const tokenizerDir = stringFlag(values, 'tokenizer');
  const loaded = await llm.loadPretrained(modelDir, { tokenizer: tokenizerDir === undefined });
  try {
    const tokenizer: TextTokenizer | undefined = tokenizerDir !== undefined ? await llm.HFTokenizer.fromDirectory(tokenizerDir) : loaded.tokenizer;
    if (!tokenizer) throw new Error(`${modelDir} has no tokenizer.json; pass --tokenizer with a folder that holds the model's tokenizer.json`);
    if (tokenizer.vocabSize > loaded.config.vocabSize) {
      throw new Error(
        `the tokenizer has ${tokenizer.vocabSize} ids but the model's vocabulary has ${loaded.config.vocabSize}; ` +
          'pass the tokenizer the model was trained with (--tokenizer)',
      );
    }
    const ids = prompts.map((prompt) => {
      if (!chat) return tokenizer.encode(prompt);
      if (!tokenizer.chatTemplate) throw new Error('--chat: the tokenizer has no chat template (tokenizer_config.json chat_template or chat_template.jinja)');
      const messages = [...(system !== undefined ? [{ role: 'system', content: system }] : []), { role: 'user', content: prompt }];
      return tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
    });
    const stream = prompts.length === 1 && !json;
    const options: GenerateOptions = {
      maxNewTokens,
      tokenizer,
      ...(temperature !== undefined ? { temperature } : {}),
      ...(topK !== undefined ? { topK } : {}),
      ...(topP !== undefined ? { topP } : {}),
      ...(seed !== undefined ? { seed } : {}),
      ...(stream ? { onToken: (step: { text?: string[] }) => void io.stdout.write(step.text?.[0] ?? '') } : {}),
    };
    const result = await llm.generate(loaded.model, ids, options);
    if (json) {
      io.stdout.write(
        `${JSON.stringify({ prompts, promptTokens: ids, tokens: result.tokens, text: result.text, finishReasons: result.finishReasons }, null, 2)}\n`,
      );
    } else if (stream) {
      io.stdout.write('\n');
    } else {
      result.text!.forEach((text, i) => io.stdout.write(`--- ${i + 1}: ${prompts[i]}\n${text}\n`));
    }
  } finally {
    loaded.model.dispose();
  }
  return 0;
}

export const generateCommand: Command = {
  name: 'generate',
  summary: 'generate text from an exported LLM folder with its tokenizer',
  help: HELP,
  options: {
    prompt: { type: 'string', multiple: true },
    'max-new-tokens': { type: 'string' },
    temperature: { type: 'string' },
    'top-k': { type: 'string' },
    'top-p': { type: 'string' },
    seed: { type: 'string' },
    chat: { type: 'boolean' },
    system: { type: 'string' },
    tokenizer: { type: 'string' },
    json: { type: 'boolean' },
    ...BACKEND_FLAG,
  },
  positionals: { min: 1, max: 1, names: '<model>' },
  run,
};
