// `chimera generate` against @chimera/llm's own generate on the same exported folder: the CLI must print exactly the
// tokens and text the library produces (greedy, sampled with a seed, a batch of two, streamed text).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manualSeed } from '@chimera/core';
import { setupTestBackend } from '@chimera/core/testing';
import { ByteTokenizer, CausalLM, generate, loadPretrained, savePretrained, tinyLlama, type PretrainedModel } from '@chimera/llm';
import { assertBuilt, runChimera, tempFolder } from './run-cli';

const temp = tempFolder('generate');
const modelDir = join(temp.dir, 'tiny-llm');
let loaded: PretrainedModel;

beforeAll(async () => {
  assertBuilt();
  await setupTestBackend('cpu');
  manualSeed(7);
  const tokenizer = new ByteTokenizer({ addBosToken: true });
  const model = new CausalLM(tinyLlama({ vocabSize: tokenizer.vocabSize, bosTokenId: tokenizer.bosTokenId, eosTokenId: tokenizer.eosTokenId }));
  await savePretrained(model, modelDir, { tokenizer });
  model.dispose();
  loaded = await loadPretrained(modelDir);
});
afterAll(() => {
  loaded?.model.dispose();
  temp.remove();
});

interface GenerateJson {
  prompts: string[];
  promptTokens: number[][];
  tokens: number[][];
  text: string[];
  finishReasons: string[];
}

function cli(args: string[]): string {
  const run = runChimera(['generate', modelDir, '--backend', 'cpu', ...args], temp.dir);
  expect(run.status, run.stderr).toBe(0);
  return run.stdout;
}

describe('chimera generate', () => {
  it('prints the tokens and text the library generates: greedy batch and seeded sampling', async () => {
    const prompts = ['hello', 'a longer prompt'];
    const tokenizer = loaded.tokenizer!;
    const ids = prompts.map((p) => tokenizer.encode(p));
    const greedy = await generate(loaded.model, ids, { maxNewTokens: 12, tokenizer });
    const batch = JSON.parse(cli(['--prompt', prompts[0]!, '--prompt', prompts[1]!, '--max-new-tokens', '12', '--json'])) as GenerateJson;
    expect(batch.promptTokens).toEqual(ids);
    expect(batch.tokens).toEqual(greedy.tokens);
    expect(batch.text).toEqual(greedy.text);
    expect(batch.finishReasons).toEqual(greedy.finishReasons);

    const sampled = await generate(loaded.model, [ids[0]!], { maxNewTokens: 12, tokenizer, temperature: 1.5, topK: 50, seed: 3 });
    const cliSampled = JSON.parse(cli(['--prompt', prompts[0]!, '--max-new-tokens', '12', '--temperature', '1.5', '--top-k', '50', '--seed', '3', '--json'])) as GenerateJson;
    expect(cliSampled.tokens).toEqual(sampled.tokens);
    expect(sampled.tokens[0]).not.toEqual(greedy.tokens[0]);
  });

  it('streams one prompt as plain text', async () => {
    const tokenizer = loaded.tokenizer!;
    const greedy = await generate(loaded.model, [tokenizer.encode('hello')], { maxNewTokens: 12, tokenizer });
    expect(cli(['--prompt', 'hello', '--max-new-tokens', '12'])).toBe(`${greedy.text![0]}\n`);
  });

  it('refuses --chat without a chat template and --system without --chat', () => {
    const chat = runChimera(['generate', modelDir, '--prompt', 'hi', '--chat', '--backend', 'cpu'], temp.dir);
    expect(chat.status).toBe(1);
    expect(chat.stderr).toMatch(/^chimera generate: --chat: the tokenizer has no chat template/m);
    const system = runChimera(['generate', modelDir, '--prompt', 'hi', '--system', 'be brief'], temp.dir);
    expect(system.status).toBe(2);
    expect(system.stderr).toMatch(/^chimera generate: --system needs --chat/);
  });
});
