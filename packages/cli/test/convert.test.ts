// `chimera convert` round trips on tiny models the test builds: HF folder -> Chimera checkpoint -> HF folder gives
// the same files byte for byte, and the Chimera checkpoint holds exactly the module's own state dict.
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECKPOINT_KIND_KEY, Linear, loadSafetensors, saveCheckpoint, tf, type Module } from '@chimera/core';
import { setupTestBackend } from '@chimera/core/testing';
import { ByteTokenizer, CausalLM, savePretrained, tinyLlama } from '@chimera/llm';
import { VisionTransformer, exportHFVisionTower, tinyViT } from '@chimera/vision-encoder';
import { WhisperEncoder, exportHFWhisperEncoder, tinyWhisperEncoder } from '@chimera/audio-encoder';
import { assertBuilt, runChimera, tempFolder } from './run-cli';

const temp = tempFolder('convert');
beforeAll(async () => {
  assertBuilt();
  await setupTestBackend('cpu');
});
afterAll(temp.remove);

function convert(...args: string[]): string {
  const run = runChimera(['convert', ...args, '--backend', 'cpu'], temp.dir);
  expect(run.status, run.stderr).toBe(0);
  return run.stdout;
}

/** The Chimera checkpoint's tensors equal the module's state dict, name for name and value for value. */
async function expectStateDict(file: string, module: Module): Promise<void> {
  const { tensors, metadata } = await loadSafetensors(file);
  try {
    expect(metadata[CHECKPOINT_KIND_KEY]).toBe('full');
    const own = module.stateDict();
    expect(Object.keys(tensors).sort()).toEqual(Object.keys(own).sort());
    for (const [name, tensor] of Object.entries(own)) {
      expect(tensors[name]!.shape, name).toEqual(tensor.shape);
      expect(Buffer.from((tensors[name]!.dataSync() as Float32Array).buffer).equals(Buffer.from((tensor.dataSync() as Float32Array).buffer)), name).toBe(true);
    }
  } finally {
    tf.dispose(Object.values(tensors));
  }
}

function sameFiles(a: string, b: string, names: readonly string[]): void {
  for (const name of names) expect(readFileSync(join(b, name)).equals(readFileSync(join(a, name))), name).toBe(true);
}

async function roundTrip(name: string, module: Module, exportHF: (dir: string) => Promise<unknown>): Promise<{ hf: string; chimera: string; back: string }> {
  const hf = join(temp.dir, `${name}-hf`);
  const chimera = join(temp.dir, `${name}-chimera`);
  const back = join(temp.dir, `${name}-hf-again`);
  await exportHF(hf);
  expect(convert(hf, chimera)).toMatch(new RegExp(`^converted .*${name}-hf \\(HF layout, ${name === 'llama' ? 'llm' : name}\\) -> .*${name}-chimera \\(Chimera layout\\): config\\.json, `));
  await expectStateDict(join(chimera, 'model.safetensors'), module);
  convert(chimera, back);
  expect(readdirSync(back).sort()).toEqual(readdirSync(hf).sort());
  sameFiles(hf, back, readdirSync(hf));
  module.dispose();
  return { hf, chimera, back };
}

describe('chimera convert', () => {
  it('an LLM with its tokenizer: HF -> Chimera -> HF reproduces the files', async () => {
    const tokenizer = new ByteTokenizer();
    const model = new CausalLM(tinyLlama({ vocabSize: tokenizer.vocabSize, hiddenSize: 16, numHeads: 2, numKvHeads: 1, intermediateSize: 24 }));
    // A checkpoint the user's own code saved (no config.json beside it) converts with --config.
    const own = join(temp.dir, 'own-code');
    mkdirSync(own);
    await saveCheckpoint(model, join(own, 'weights.safetensors'));
    const { hf, chimera } = await roundTrip('llama', model, (dir) => savePretrained(model, dir, { tokenizer }));
    const tokenizerFiles = readdirSync(hf).filter((f) => f.startsWith('tokenizer'));
    expect(tokenizerFiles).toContain('tokenizer.json');
    sameFiles(hf, chimera, tokenizerFiles);
    const fromOwn = join(temp.dir, 'own-code-hf');
    convert(join(own, 'weights.safetensors'), fromOwn, '--config', join(hf, 'config.json'));
    sameFiles(hf, fromOwn, ['model.safetensors', 'config.json']);
  });

  it('a ViT tower: HF -> Chimera -> HF reproduces the files', async () => {
    const tower = new VisionTransformer(tinyViT({ numLayers: 2 }));
    await roundTrip('vision', tower, (dir) => exportHFVisionTower(tower, dir));
  });

  it('a Whisper encoder: HF -> Chimera -> HF reproduces the files', async () => {
    const encoder = new WhisperEncoder(tinyWhisperEncoder());
    await roundTrip('audio', encoder, (dir) => exportHFWhisperEncoder(encoder, dir));
  });

  it('refuses a trainable-only checkpoint with the way out, and a Chimera checkpoint without a config', async () => {
    const layer = new Linear(3, 2);
    const trainable = join(temp.dir, 'trainable.safetensors');
    await saveCheckpoint(layer, trainable, { trainableOnly: true });
    const bare = join(temp.dir, 'bare', 'model.safetensors');
    mkdirSync(join(temp.dir, 'bare'));
    await saveCheckpoint(layer, bare);
    layer.dispose();
    const partial = runChimera(['convert', trainable, join(temp.dir, 'out')], temp.dir);
    expect(partial.status).toBe(1);
    expect(partial.stderr).toMatch(/^chimera convert: .*trainable\.safetensors is a Chimera checkpoint of kind 'trainable'.*load it onto the base model/);
    const noConfig = runChimera(['convert', bare, join(temp.dir, 'out')], temp.dir);
    expect(noConfig.status).toBe(2);
    expect(noConfig.stderr).toMatch(/^chimera convert: .*model\.safetensors is a Chimera checkpoint with no config\.json beside it; pass --config/);
  });
});
