// The three model families the CLI converts, each through its package's own HF importer and exporter: the LLM
// (@chimera/llm: loadPretrained / savePretrained), the ViT tower (@chimera/vision-encoder) and the Whisper encoder
// (@chimera/audio-encoder). The encoder packages are optional peers, imported only when a command needs them.
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import type { Module } from '@chimera/core';

export type ModelKind = 'llm' | 'vision' | 'audio';
export const MODEL_KINDS: readonly ModelKind[] = ['llm', 'vision', 'audio'];

const PACKAGE_OF: Record<ModelKind, string> = {
  llm: '@chimera/llm',
  vision: '@chimera/vision-encoder',
  audio: '@chimera/audio-encoder',
};

const MODEL_TYPES: Record<ModelKind, readonly string[]> = {
  llm: ['llama', 'qwen2', 'qwen3'],
  vision: ['clip', 'clip_vision_model', 'siglip', 'siglip_vision_model'],
  audio: ['whisper', 'qwen2_audio_encoder'],
};

export interface ExportOptions {
  dtype: 'F32' | 'F16' | 'BF16';
  /** Copies the tokenizer files into a folder (an LLM export ships its tokenizer). */
  tokenizer?: { save(dir: string): Promise<void> };
}

/** A model in memory, whichever family: what convert needs to write it in either layout. */
export interface LoadedModel {
  kind: ModelKind;
  module: Module;
  /** The HF config.json of exactly this module (written next to a Chimera checkpoint so it converts back). */
  hfConfig(): unknown;
  /** Writes the HF folder (weights in PyTorch layout and names, config.json, tokenizer for an LLM). */
  exportHF(dir: string, options: ExportOptions): Promise<void>;
  dispose(): void;
}

export interface ModelFamily {
  kind: ModelKind;
  /** Loads an HF checkpoint path (folder, file or index) with the package's importer. */
  loadHF(path: string): Promise<LoadedModel>;
  /** A freshly initialised module built from an HF config.json, for a Chimera checkpoint to load into. */
  fromHFConfig(config: unknown, source: string): Promise<LoadedModel>;
}

/** The family an HF config.json declares, or null when its model_type is none of them (or absent). */
export function kindOfConfig(config: Record<string, unknown>): ModelKind | null {
  const type = config.model_type;
  if (typeof type !== 'string') return null;
  return MODEL_KINDS.find((kind) => MODEL_TYPES[kind].includes(type)) ?? null;
}

export function describeModelTypes(): string {
  return MODEL_KINDS.map((kind) => `${kind}: ${MODEL_TYPES[kind].join(', ')}`).join('; ');
}

async function importPackage<T>(kind: ModelKind, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' || (error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') {
      throw new Error(`${kind} models need ${PACKAGE_OF[kind]}, which is not installed; run: npm install ${PACKAGE_OF[kind]}`);
    }
    throw error;
  }
}

async function isDirectory(path: string): Promise<boolean> {
  return fs.stat(path).then((s) => s.isDirectory(), () => false);
}

async function llmFamily(): Promise<ModelFamily> {
  const llm = await importPackage('llm', () => import('@chimera/llm'));
  const wrap = (model: InstanceType<typeof llm.CausalLM>): LoadedModel => ({
    kind: 'llm',
    module: model,
    hfConfig: () => llm.configToHF(model.config),
    exportHF: async (dir, options) => {
      await llm.savePretrained(model, dir, { dtype: options.dtype, ...(options.tokenizer ? { tokenizer: options.tokenizer } : {}) });
    },
    dispose: () => model.dispose(),
  });
  return {
    kind: 'llm',
    // loadPretrained reads a folder; a .safetensors or index path means the folder it sits in.
    loadHF: async (path) => wrap((await llm.loadPretrained((await isDirectory(path)) ? path : nodePath.dirname(path), { tokenizer: false })).model),
    fromHFConfig: async (config, source) => wrap(new llm.CausalLM(llm.configFromHF(config, source))),
  };
}

async function visionFamily(): Promise<ModelFamily> {
  const vision = await importPackage('vision', () => import('@chimera/vision-encoder'));
  const wrap = (tower: InstanceType<typeof vision.VisionTransformer>): LoadedModel => ({
    kind: 'vision',
    module: tower,
    hfConfig: () => vision.vitConfigToHF(tower.config),
    exportHF: (dir) => vision.exportHFVisionTower(tower, dir),
    dispose: () => tower.dispose(),
  });
  return {
    kind: 'vision',
    loadHF: async (path) => wrap(await vision.loadHFVisionTower(path)),
    fromHFConfig: async (config) => wrap(new vision.VisionTransformer(vision.vitConfigFromHF(config))),
  };
}

async function audioFamily(): Promise<ModelFamily> {
  const audio = await importPackage('audio', () => import('@chimera/audio-encoder'));
  const wrap = (encoder: InstanceType<typeof audio.WhisperEncoder>): LoadedModel => ({
    kind: 'audio',
    module: encoder,
    hfConfig: () => audio.whisperEncoderConfigToHF(encoder.config),
    exportHF: (dir) => audio.exportHFWhisperEncoder(encoder, dir),
    dispose: () => encoder.dispose(),
  });
  return {
    kind: 'audio',
    loadHF: async (path) => wrap(await audio.loadHFWhisperEncoder(path)),
    fromHFConfig: async (config) => wrap(new audio.WhisperEncoder(audio.whisperEncoderConfigFromHF(config))),
  };
}

export function modelFamily(kind: ModelKind): Promise<ModelFamily> {
  return kind === 'llm' ? llmFamily() : kind === 'vision' ? visionFamily() : audioFamily();
}
