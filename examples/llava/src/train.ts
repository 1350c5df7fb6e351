/**
 * The training script: builds a LLaVA-style model, trains it in two stages on the
 * shapes questions next to a text-only baseline, scores both on held-out questions per type, checks that the
 * trainable-only checkpoint reloads to the same answers, and writes everything to one folder.
 *
 *   npm run train -w @chimera-examples/llava -- [--help] [--out DIR] [--seed 1] ...   (USAGE below lists every option)
 *
 * Exit code 0 when the run meets its target (>= 90% held-out exact match on shape and color questions, the
 * baseline clearly below, the reloaded checkpoint answering the same); 1 with the reason otherwise; 2 for a flag
 * it does not know or cannot read.
 */
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { initBackend, type BackendName } from '@chimera/core';
import type { ViTPositions } from '@chimera/vision-encoder';
import { QUESTION_TYPES, type QuestionType } from '@chimera-examples/shapes-dataset';
import { checkTrainableCheckpoint } from './checkpoint';
import { accuracies, comparisonTable, describeScore, percent, writeAnswerGrid } from '@chimera-examples/shapes-vqa';
import { runLlava, type LlavaOptions, type TrainVision } from './experiment';
import { DEFAULT_SIZE, imageTokens, type LlavaSize } from './model';
import { UsageError, int, optionalInt, parseFlags, positive as rate, runDirectory, runScript, writeJson, writeLossCurve } from '@chimera-examples/kit';
import { DEFAULT_LABEL_WEIGHTS } from './vision-pretraining';

/** The acceptance target: held-out exact match on these types. */
const TARGET = 0.9;
const TARGET_TYPES: readonly QuestionType[] = ['shape', 'color'];
/** The baseline must stay this far below the model on the target types. */
const BASELINE_MARGIN = 0.3;
/**
 * The question types trained and scored by default: the target's. With count, size and left-of questions in the
 * mix as well, stage 2 did not learn to find an object by its kind within the budget (README, "How the binding
 * was found"); `--types` adds them.
 */
const DEFAULT_TYPES: readonly QuestionType[] = ['shape', 'color'];

const USAGE = `npm run train -w @chimera-examples/llava -- [options]     (the values shown are the defaults)
  --out <repo>/runs/llava  --seed 1  --backend wasm|cpu (default: initBackend()'s choice)  --batch 32
  --vision-steps 600 --vision-lr 1e-2 --vision-batch N --kind-weight ${DEFAULT_LABEL_WEIGHTS.kind} --pair-weight ${DEFAULT_LABEL_WEIGHTS.pair}   ViT pre-training
  --vision-from TOWER.safetensors   start from a saved tower instead of pre-training one
  --text-steps 150 --text-lr 3e-3               the text-only LLM (also the baseline)
  --stage1-steps 100 --stage1-lr 3e-3           stage 1: the projector
  --stage2-steps 1500 --stage2-lr 2e-3 --stage2-single-steps 0 --stage2-shapes 2,3   stage 2: projector + LLM
  --turns 1 --train-vision false|last|true --shapes 1,3 --types ${DEFAULT_TYPES.join(',')} --held-out 200 --eval-every 0
  --image-size N --patch N --positions rope2d|learned --merge N --feature-layer N --vit-hidden N --vit-layers N
  --llm-hidden N --llm-layers N --llm-ffn N --llm-heads N --llm-kv-heads N   (model defaults: model.ts)`;

async function main(): Promise<number> {
  const startedAt = performance.now();
  const values = parseFlags({
    usage: USAGE,
    options: {
      out: { type: 'string' },
      seed: { type: 'string', default: '1' },
      backend: { type: 'string' },
      batch: { type: 'string', default: '32' },
      'vision-steps': { type: 'string', default: '600' },
      'vision-from': { type: 'string' },
      'vision-batch': { type: 'string' },
      'kind-weight': { type: 'string', default: String(DEFAULT_LABEL_WEIGHTS.kind) },
      'pair-weight': { type: 'string', default: String(DEFAULT_LABEL_WEIGHTS.pair) },
      'vision-lr': { type: 'string', default: '1e-2' },
      'text-steps': { type: 'string', default: '150' },
      'stage1-steps': { type: 'string', default: '100' },
      'stage2-steps': { type: 'string', default: '1500' },
      'text-lr': { type: 'string', default: '3e-3' },
      'stage1-lr': { type: 'string', default: '3e-3' },
      'stage2-lr': { type: 'string', default: '2e-3' },
      'stage2-single-steps': { type: 'string', default: '0' },
      'stage2-shapes': { type: 'string' },
      turns: { type: 'string', default: '1' },
      'train-vision': { type: 'string', default: 'false' },
      shapes: { type: 'string', default: '1,3' },
      types: { type: 'string', default: DEFAULT_TYPES.join(',') },
      'held-out': { type: 'string', default: '200' },
      'eval-every': { type: 'string', default: '0' },
      'image-size': { type: 'string' },
      patch: { type: 'string' },
      positions: { type: 'string' },
      merge: { type: 'string' },
      'feature-layer': { type: 'string' },
      'vit-hidden': { type: 'string' },
      'vit-layers': { type: 'string' },
      'llm-hidden': { type: 'string' },
      'llm-layers': { type: 'string' },
      'llm-ffn': { type: 'string' },
      'llm-heads': { type: 'string' },
      'llm-kv-heads': { type: 'string' },
    },
  });

  const seed = int('seed', values.seed!);
  const types = values.types!.split(',').map((t) => t.trim()) as QuestionType[];
  const unknownTypes = types.filter((t) => !(QUESTION_TYPES as readonly string[]).includes(t));
  if (unknownTypes.length) throw new UsageError(`--types: unknown type(s) ${unknownTypes.join(', ')}; choose from ${QUESTION_TYPES.join(', ')}`);
  const { min: minShapes, max: maxShapes } = shapeRange('shapes', values.shapes!);
  if (values.positions !== undefined && values.positions !== 'rope2d' && values.positions !== 'learned') {
    throw new UsageError(`--positions must be rope2d or learned, got '${values.positions}'`);
  }
  const trainVision: TrainVision = values['train-vision'] === 'last' ? 'last' : bool('train-vision', values['train-vision']!);
  const size: LlavaSize = {
    vision: {
      ...DEFAULT_SIZE.vision,
      imageSize: optionalInt('image-size', values['image-size']) ?? DEFAULT_SIZE.vision.imageSize,
      patchSize: optionalInt('patch', values.patch) ?? DEFAULT_SIZE.vision.patchSize,
      merge: optionalInt('merge', values.merge) ?? DEFAULT_SIZE.vision.merge,
      positions: (values.positions ?? DEFAULT_SIZE.vision.positions) as ViTPositions,
      featureLayer: optionalInt('feature-layer', values['feature-layer']) ?? DEFAULT_SIZE.vision.featureLayer,
      hiddenSize: optionalInt('vit-hidden', values['vit-hidden']) ?? DEFAULT_SIZE.vision.hiddenSize,
      numLayers: optionalInt('vit-layers', values['vit-layers']) ?? DEFAULT_SIZE.vision.numLayers,
    },
    llm: {
      ...DEFAULT_SIZE.llm,
      hiddenSize: optionalInt('llm-hidden', values['llm-hidden']) ?? DEFAULT_SIZE.llm.hiddenSize,
      numLayers: optionalInt('llm-layers', values['llm-layers']) ?? DEFAULT_SIZE.llm.numLayers,
      intermediateSize: optionalInt('llm-ffn', values['llm-ffn']) ?? DEFAULT_SIZE.llm.intermediateSize,
      numHeads: optionalInt('llm-heads', values['llm-heads']) ?? DEFAULT_SIZE.llm.numHeads,
      numKvHeads: optionalInt('llm-kv-heads', values['llm-kv-heads']) ?? DEFAULT_SIZE.llm.numKvHeads,
    },
    projector: DEFAULT_SIZE.projector,
  };
  const turns = int('turns', values.turns!);
  const options: LlavaOptions = {
    size,
    data: { shapesPerImage: { min: minShapes, max: maxShapes } },
    types,
    phases: {
      vision: {
        steps: int('vision-steps', values['vision-steps']!),
        learningRate: rate('vision-lr', values['vision-lr']!),
        labelWeights: { kind: weight('kind-weight', values['kind-weight']!), pair: weight('pair-weight', values['pair-weight']!) },
        ...(values['vision-batch'] !== undefined ? { batchSize: int('vision-batch', values['vision-batch']) } : {}),
      },
      text: { steps: int('text-steps', values['text-steps']!), learningRate: rate('text-lr', values['text-lr']!), turns },
      stage1: { steps: int('stage1-steps', values['stage1-steps']!), learningRate: rate('stage1-lr', values['stage1-lr']!), turns },
      stage2: {
        steps: int('stage2-steps', values['stage2-steps']!),
        learningRate: rate('stage2-lr', values['stage2-lr']!),
        turns,
        singleShapeSteps: int('stage2-single-steps', values['stage2-single-steps']!),
        shapesPerImage: values['stage2-shapes'] !== undefined ? shapeRange('stage2-shapes', values['stage2-shapes']) : multiShape(minShapes, maxShapes),
      },
    },
    trainVision,
    batchSize: int('batch', values.batch!),
    seed,
    heldOutPerType: int('held-out', values['held-out']!),
    evalEvery: int('eval-every', values['eval-every']!),
    progress: 'auto',
    log: (line) => console.log(line),
  };

  const out = runDirectory('llava', values.out);
  for (const stale of ['metrics.json', 'loss.png', 'test-answers.png', 'llava-trainable.safetensors', 'vision-tower.safetensors']) rmSync(join(out, stale), { force: true });
  options.metricsDir = out;
  options.visionTowerPath = join(out, 'vision-tower.safetensors');
  if (values['vision-from'] !== undefined) {
    options.visionTowerFrom = resolve(values['vision-from']);
    if (options.visionTowerFrom === options.visionTowerPath) {
      throw new UsageError(`--vision-from: ${options.visionTowerFrom} is where this run saves its tower; copy it elsewhere or use another --out`);
    }
  }

  const backend = await initBackend(values.backend ? { backend: values.backend as BackendName } : {});
  console.log(`backend: ${backend.backend}${backend.fastPaths.length ? ` (fast paths: ${backend.fastPaths.join(', ')})` : ''}`);
  console.log(
    `model: ViT ${size.vision.imageSize}px / patch ${size.vision.patchSize} (${size.vision.positions} positions)` +
      `${size.vision.merge > 1 ? `, ${size.vision.merge}x${size.vision.merge} merge` : ''} -> ${imageTokens(size.vision)} image tokens, ` +
      `${size.projector} projector, Llama ${size.llm.numLayers} layers x ${size.llm.hiddenSize}; outputs in ${out}/`,
  );

  const result = await runLlava(options);
  try {
    const check = await checkTrainableCheckpoint(result, size, seed, join(out, 'llava-trainable.safetensors'));
    const stage1 = result.phases.find((p) => p.name === 'stage1')!.score;
    writeAnswerGrid(join(out, 'test-answers.png'), result.heldOut, result.final, { types, count: 40, columns: types.length * 2, scale: 4 });
    await writeLossCurve(out, ['vision', 'text', 'stage1', 'stage2'].map((phase) => ({ name: phase, path: join(out, `metrics-${phase}.jsonl`) })));
    const totalSeconds = (performance.now() - startedAt) / 1000;

    const failures: string[] = [];
    for (const type of TARGET_TYPES.filter((t) => types.includes(t))) {
      const model = result.final.byType[type]!.accuracy;
      const baseline = result.baseline.byType[type]!.accuracy;
      if (model < TARGET) failures.push(`${type} questions: ${percent(model)} < the ${percent(TARGET)} target`);
      if (model - baseline < BASELINE_MARGIN) failures.push(`${type} questions: the text-only baseline (${percent(baseline)}) is within ${percent(BASELINE_MARGIN)} of the model (${percent(model)})`);
    }
    if (check.same !== check.compared) failures.push(`the reloaded checkpoint answered ${check.compared - check.same} of ${check.compared} held-out questions differently`);

    writeJson(join(out, 'metrics.json'), {
      passed: failures.length === 0,
      failures,
      target: { types: TARGET_TYPES, accuracy: TARGET, baselineMargin: BASELINE_MARGIN },
      heldOutPerType: options.heldOutPerType,
      exactMatch: {
        llava: accuracies(result.final),
        textOnlyBaseline: accuracies(result.baseline),
        afterStage1: accuracies(stage1),
      },
      vision: result.vision,
      phases: result.phases.map(({ score, ...phase }) => ({ ...phase, heldOut: accuracies(score) })),
      checkpoint: check,
      seconds: { total: totalSeconds, training: result.trainSeconds },
      machine: { backend: backend.backend, fastPaths: backend.fastPaths, load: loadavg()[0] },
      config: { seed, batchSize: options.batchSize, types, data: options.data, size, phases: options.phases, trainVision, parameters: result.parameterCount },
    });

    console.log(`\nheld-out exact match (${options.heldOutPerType} questions per type):`);
    const columns = [{ name: 'LLaVA', score: result.final }, { name: 'text-only', score: result.baseline }, { name: 'stage 1 only', score: stage1 }];
    for (const line of comparisonTable(columns, types)) console.log(`  ${line}`);
    console.log(
      `checkpoint: ${check.savedTensors} of ${check.totalTensors} parameter tensors (trainable only, ${(check.bytes / 1024).toFixed(0)} KB) ` +
        `reloaded onto a freshly built model with the pretrained ViT: ${check.same}/${check.compared} answers the same`,
    );
    console.log(
      `time: ${minutes(totalSeconds)} wall, ${minutes(result.trainSeconds)} in training steps, backend ${backend.backend}, ` +
        `load average ${loadavg()[0]!.toFixed(1)}`,
    );
    console.log(`outputs: ${out}/ (metrics.json, loss.png, test-answers.png, llava-trainable.safetensors, vision-tower.safetensors, metrics-{vision,text,stage1,stage2}.jsonl)`);
    if (failures.length) {
      console.error(`FAIL: ${failures.join('; ')}`);
      return 1;
    }
    console.log(`PASS: ${TARGET_TYPES.join(' and ')} questions >= ${percent(TARGET)} (${describeScore(result.final, TARGET_TYPES)}), text-only baseline far below`);
    return 0;
  } finally {
    result.model.dispose();
  }
}

/**
 * Stage 2's default images: those of the held-out mix with two or more shapes (on a one-shape image every question
 * is answered without finding the object it names, so those teach no lookup); the mix itself if it has none.
 */
function multiShape(min: number, max: number): { min: number; max: number } {
  return max >= 2 ? { min: Math.max(2, min), max } : { min, max };
}

/** 'min,max' (or one number) shapes per image. */
function shapeRange(name: string, text: string): { min: number; max: number } {
  const [min, max = min] = text.split(',').map((n) => int(name, n));
  if (min === undefined || !(min >= 1) || !(max >= min)) throw new UsageError(`--${name} must be min,max shapes per image (e.g. 1,3), got '${text}'`);
  return { min, max };
}

function weight(name: string, text: string): number {
  const value = Number(text);
  if (!(value >= 0 && Number.isFinite(value))) throw new UsageError(`--${name} must be a number >= 0, got '${text}'`);
  return value;
}

function bool(name: string, text: string): boolean {
  if (text === 'true') return true;
  if (text === 'false') return false;
  throw new UsageError(`--${name} must be true or false, got '${text}'`);
}

function minutes(seconds: number): string {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

void runScript(USAGE, main);
