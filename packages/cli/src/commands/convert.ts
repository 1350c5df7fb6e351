// `chimera convert`: between an HF model folder (PyTorch names and [out, in] Linear layouts, what transformers
// loads) and a Chimera checkpoint (core's saveCheckpoint: Chimera state-dict names, Linear weights [in, out], and
// config.json beside it so it converts back). Loading and writing are the packages' own importers and exporters.
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import { UsageError, type Command, type CliIO, type ParsedCommandArgs } from '../command';
import { readCheckpointFiles, readConfigJson } from '../checkpoint-files';
import { choiceFlag, stringFlag } from '../flags';
import { describeModelTypes, kindOfConfig, MODEL_KINDS, modelFamily, type LoadedModel, type ModelKind } from '../model-kinds';
import { startBackend, BACKEND_FLAG, BACKEND_HELP } from '../backend-flag';

const HELP = `Usage: chimera convert <input> <output> [--to hf|chimera] [--model llm|vision|audio] [--config FILE] [--dtype F32|F16|BF16]

Converts a model between the HF layout (PyTorch names and [out, in] Linear weights, what transformers
loads) and a Chimera checkpoint (saveCheckpoint's names and [in, out] layouts, with config.json beside it).

Arguments:
  <input>        an HF model folder (or .safetensors / .index.json with config.json beside it), or a Chimera
                 checkpoint (a folder or .safetensors written by saveCheckpoint)
  <output>       the folder to write; an earlier export there is replaced as one unit

Flags:
  --to FORMAT    hf or chimera (default: the other layout than the input's)
  --model KIND   llm, vision or audio (default: from config.json's model_type:
                 ${describeModelTypes()})
  --config FILE  the HF config.json a Chimera checkpoint was built from (default: config.json beside it)
  --dtype DTYPE  file dtype of the weights: F32 (default, bit-exact), F16 or BF16 (LLM exports and Chimera
                 checkpoints; vision and audio HF exports are F32)
${BACKEND_HELP}
  -h, --help     this help

An LLM's tokenizer files (tokenizer.json, tokenizer_config.json, chat template, generation_config.json) are
copied along. A Chimera checkpoint of trainable parameters only (Trainer checkpoints, trainableOnly saves)
holds part of a model: load it onto the base model and save the whole model first.

Examples:
  chimera convert models/SmolLM2-135M runs/smollm-chimera --to chimera
  chimera convert runs/smollm-chimera exports/smollm-hf --to hf
  chimera convert models/llava-1.5-7b-hf exports/clip-tower --model vision --to hf
`;

/** Files an LLM folder carries besides weights and config.json, copied byte for byte. */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja', 'chat_template.json', 'generation_config.json'];

async function presentFiles(dir: string, names: readonly string[]): Promise<string[]> {
  const present: string[] = [];
  for (const name of names) if (await fs.stat(nodePath.join(dir, name)).then((s) => s.isFile(), () => false)) present.push(name);
  return present;
}

function copier(dir: string, names: readonly string[]) {
  return {
    async save(target: string): Promise<void> {
      for (const name of names) await fs.copyFile(nodePath.join(dir, name), nodePath.join(target, name));
    },
  };
}

function resolveKind(flag: ModelKind | undefined, config: Record<string, unknown> | null, where: string): ModelKind {
  if (flag) return flag;
  if (!config) throw new UsageError(`${where} has no config.json to tell the model family from; pass --model llm, vision or audio`);
  const kind = kindOfConfig(config);
  if (!kind) {
    throw new UsageError(
      `config.json of ${where} has model_type ${JSON.stringify(config.model_type)}, which is none of ${describeModelTypes()}; ` +
        'for a composite (e.g. llava) pass --model for the part to convert',
    );
  }
  return kind;
}

async function run({ values, positionals }: ParsedCommandArgs, io: CliIO): Promise<number> {
  const [input, output] = positionals as [string, string];
  const to = choiceFlag(values, 'to', ['hf', 'chimera'] as const);
  const kindFlag = choiceFlag(values, 'model', MODEL_KINDS);
  const dtype = choiceFlag(values, 'dtype', ['F32', 'F16', 'BF16'] as const) ?? 'F32';
  const configFlag = stringFlag(values, 'config');

  const found = await readCheckpointFiles(input);
  const target = to ?? (found.layout === 'hf' ? 'chimera' : 'hf');
  if (found.layout === 'chimera' && found.chimeraKind !== 'full') {
    throw new Error(
      `${input} is a Chimera checkpoint of kind '${found.chimeraKind}' (trainable parameters only), not a whole model; ` +
        'load it onto the base model (loadTrainableCheckpoint) and saveCheckpoint the whole model, then convert that',
    );
  }
  if (found.layout === 'hf' && configFlag !== undefined) {
    throw new UsageError(`--config is for Chimera checkpoints; ${input} is in the HF layout and its own config.json is read`);
  }
  const config = await readConfigJson(configFlag ?? found.dir);
  if (found.layout === 'chimera' && !config) {
    throw new UsageError(`${input} is a Chimera checkpoint with no config.json beside it; pass --config with the HF config.json of the model it holds`);
  }
  const kind = resolveKind(kindFlag, config, configFlag ?? input);
  if (dtype !== 'F32' && target === 'hf' && kind !== 'llm') {
    throw new UsageError(`--dtype ${dtype}: ${kind} HF exports are written in F32; leave --dtype out`);
  }
  await startBackend(values);
  const { commitDirectory, loadCheckpoint, saveCheckpoint, writeFileAtomic } = await import('@chimera/core');
  const family = await modelFamily(kind);

  let model: LoadedModel;
  if (found.layout === 'hf') {
    model = await family.loadHF(found.files.length === 1 && !(await isDir(input)) ? input : found.dir);
  } else {
    model = await family.fromHFConfig(config, configFlag ?? nodePath.join(found.dir, 'config.json'));
    try {
      await loadCheckpoint(model.module, found.files.length === 1 ? found.files[0]!.path : input);
    } catch (error) {
      model.dispose();
      throw new Error(`${input} does not fit the ${kind} model of ${configFlag ?? 'its config.json'}: ${(error as Error).message}`);
    }
  }
  try {
    const carried = kind === 'llm' ? await presentFiles(found.dir, TOKENIZER_FILES) : [];
    if (target === 'hf') {
      await model.exportHF(output, { dtype, ...(carried.length ? { tokenizer: copier(found.dir, carried) } : {}) });
    } else {
      await commitDirectory(
        output,
        async (staging) => {
          await saveCheckpoint(model.module, nodePath.join(staging, 'model.safetensors'), { floatDtype: dtype });
          await copier(found.dir, carried).save(staging);
          await writeFileAtomic(nodePath.join(staging, 'config.json'), `${JSON.stringify(model.hfConfig(), null, 2)}\n`);
        },
        { last: ['config.json'], what: 'convert' },
      );
    }
  } finally {
    model.dispose();
  }
  const written = (await fs.readdir(output)).filter((name) => !name.startsWith('.')).sort();
  const from = found.layout === 'hf' ? 'HF' : 'Chimera';
  const into = target === 'hf' ? 'HF' : 'Chimera';
  io.stdout.write(`converted ${input} (${from} layout, ${kind}) -> ${output} (${into} layout): ${written.join(', ')}\n`);
  return 0;
}

async function isDir(path: string): Promise<boolean> {
  return fs.stat(path).then((s) => s.isDirectory(), () => false);
}

export const convertCommand: Command = {
  name: 'convert',
  summary: 'convert a model between the HF layout and a Chimera checkpoint (LLM, ViT tower, Whisper encoder)',
  help: HELP,
  options: {
    to: { type: 'string' },
    model: { type: 'string' },
    config: { type: 'string' },
    dtype: { type: 'string' },
    ...BACKEND_FLAG,
  },
  positionals: { min: 2, max: 2, names: '<input> <output>' },
  run,
};
