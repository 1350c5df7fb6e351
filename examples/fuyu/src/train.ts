/**
 * Trains the Fuyu-style model on the fine-detail shapes questions and writes its results to runs/fuyu/:
 *
 *   npm run train -w @chimera-examples/fuyu -- [--help] [--out DIR] [--seed 1] ...   (USAGE below lists every option)
 *
 * Exit code 0 when the run meets its target (per question type: >= 90% held-out exact match on the seen sizes,
 * the text-only baseline at least 40 points below, the unseen sizes within 5 points of the seen ones, and the
 * reloaded checkpoint answering the same); 1 with the reasons otherwise; 2 for a flag it does not know or
 * cannot read.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend, type BackendName } from '@chimera/core';
import { FINE_DETAIL_SEEN_SIZES, FINE_DETAIL_UNSEEN_SIZES, QUESTION_TYPES, sizeKey, type QuestionType } from '@chimera-examples/shapes-dataset';
import { accuracies, comparisonTable, describeScore, percent, scoreExamples, sizeTable, writeAnswerGrid, type ExactMatch } from '@chimera-examples/shapes-vqa';
import { RunClock, UsageError, int, oneOf, optionalInt, parseFlags, positive as rate, runDirectory, runScript, writeJson, writeLossCurve } from '@chimera-examples/kit';
import { checkTrainableCheckpoint } from './checkpoint';
import { CURRICULUM_SIZES, runFuyu, type FuyuOptions } from './experiment';
import { DEFAULT_SIZE, imageTokens, type FuyuSize } from './model';

/** The acceptance target, per question type. */
const TARGET = 0.9;
/** The text-only baseline must stay this far below the model. */
const BASELINE_MARGIN = 0.4;
/** Unseen image sizes may score at most this much below the seen ones. */
const UNSEEN_MARGIN = 0.05;
const DEFAULT_TYPES: readonly QuestionType[] = ['shape', 'color'];

const USAGE = `npm run train -w @chimera-examples/fuyu -- [options]     (the values shown are the defaults)
  --out <repo>/runs/fuyu  --seed 1  --backend wasm|cpu (default: initBackend()'s choice)  --batch 32
  --text-steps 100 --text-lr 3e-3                 the text-only decoder (also the baseline)
  --image-steps 2300 --image-lr 5e-3 --turns 3 [--train-patches]   the decoder (and with --train-patches the patch Linear), on the images
  --curriculum-steps 2000 --curriculum-sizes ${CURRICULUM_SIZES.map(sizeKey).join(',')} --curriculum-shapes 1 --curriculum-types shape,color   the image phase's first steps
  --types ${DEFAULT_TYPES.join(',')} --shapes 1,3 --held-out 200 --unseen 150 --weight-decay 0
  --patch ${DEFAULT_SIZE.patchSize} --hidden ${DEFAULT_SIZE.hiddenSize} --layers ${DEFAULT_SIZE.numLayers} --heads ${DEFAULT_SIZE.numHeads} --kv-heads ${DEFAULT_SIZE.numKvHeads} --ffn ${DEFAULT_SIZE.intermediateSize} --pixels ${DEFAULT_SIZE.pixels}|fuyu --patch-init ${DEFAULT_SIZE.patchInit}|random`;

async function main(): Promise<number> {
  const clock = new RunClock();
  const values = parseFlags({
    usage: USAGE,
    options: {
      out: { type: 'string' },
      seed: { type: 'string', default: '1' },
      backend: { type: 'string' },
      batch: { type: 'string', default: '32' },
      'text-steps': { type: 'string', default: '100' },
      'text-lr': { type: 'string', default: '3e-3' },
      'image-steps': { type: 'string', default: '2300' },
      'image-lr': { type: 'string', default: '5e-3' },
      'curriculum-steps': { type: 'string', default: '2000' },
      'curriculum-sizes': { type: 'string' },
      'curriculum-shapes': { type: 'string', default: '1' },
      'curriculum-types': { type: 'string', default: 'shape,color' },
      turns: { type: 'string', default: '3' },
      types: { type: 'string', default: DEFAULT_TYPES.join(',') },
      shapes: { type: 'string', default: '1,3' },
      'held-out': { type: 'string', default: '200' },
      unseen: { type: 'string', default: '150' },
      'weight-decay': { type: 'string', default: '0' },
      patch: { type: 'string' },
      hidden: { type: 'string' },
      layers: { type: 'string' },
      heads: { type: 'string' },
      'kv-heads': { type: 'string' },
      ffn: { type: 'string' },
      pixels: { type: 'string' },
      'patch-init': { type: 'string' },
      'train-patches': { type: 'boolean', default: false },
    },
  });

  const seed = int('seed', values.seed!);
  const types = values.types!.split(',').map((t) => oneOf('types', t.trim(), QUESTION_TYPES));
  const size: FuyuSize = {
    patchSize: optionalInt('patch', values.patch, 1) ?? DEFAULT_SIZE.patchSize,
    hiddenSize: optionalInt('hidden', values.hidden, 1) ?? DEFAULT_SIZE.hiddenSize,
    numLayers: optionalInt('layers', values.layers, 1) ?? DEFAULT_SIZE.numLayers,
    numHeads: optionalInt('heads', values.heads, 1) ?? DEFAULT_SIZE.numHeads,
    numKvHeads: optionalInt('kv-heads', values['kv-heads'], 1) ?? DEFAULT_SIZE.numKvHeads,
    intermediateSize: optionalInt('ffn', values.ffn, 1) ?? DEFAULT_SIZE.intermediateSize,
    pixels: values.pixels === undefined ? DEFAULT_SIZE.pixels : oneOf('pixels', values.pixels, ['fuyu', 'dark'] as const),
    patchInit: values['patch-init'] === undefined ? DEFAULT_SIZE.patchInit : oneOf('patch-init', values['patch-init'], ['fourier', 'random'] as const),
  };
  const weightDecay = Number(values['weight-decay']);
  if (!(weightDecay >= 0)) throw new UsageError(`--weight-decay must be a number >= 0, got '${values['weight-decay']}'`);
  const options: FuyuOptions = {
    size,
    types,
    shapesPerImage: shapeRange('shapes', values.shapes!),
    text: { steps: int('text-steps', values['text-steps']!, 0), learningRate: rate('text-lr', values['text-lr']!) },
    image: {
      steps: int('image-steps', values['image-steps']!, 1),
      learningRate: rate('image-lr', values['image-lr']!),
      curriculum: {
        steps: int('curriculum-steps', values['curriculum-steps']!, 0),
        sizes: values['curriculum-sizes'] === undefined ? CURRICULUM_SIZES : sizeList('curriculum-sizes', values['curriculum-sizes']),
        shapesPerImage: shapeRange('curriculum-shapes', values['curriculum-shapes']!),
        types: values['curriculum-types']!.split(',').map((t) => oneOf('curriculum-types', t.trim(), QUESTION_TYPES)),
      },
      turns: int('turns', values.turns!, 1),
      freezePatches: !values['train-patches']!,
    },
    batchSize: int('batch', values.batch!, 1),
    seed,
    heldOutPerType: int('held-out', values['held-out']!, 1),
    unseenPerType: int('unseen', values.unseen!, 1),
    weightDecay,
    progress: 'auto',
    log: (line) => console.log(line),
  };

  const out = runDirectory('fuyu', values.out);
  for (const stale of ['metrics.json', 'loss.png', 'test-answers.png', 'fuyu-trainable.safetensors']) rmSync(join(out, stale), { force: true });
  options.metricsDir = out;

  const backend = await initBackend(values.backend ? { backend: values.backend as BackendName } : {});
  console.log(`backend: ${backend.backend}${backend.fastPaths.length ? ` (fast paths: ${backend.fastPaths.join(', ')})` : ''}`);
  const tokens = (dims: { width: number; height: number }) => `${sizeKey(dims)}: ${imageTokens(size, dims.width, dims.height)}`;
  console.log(
    `model: raw ${size.patchSize}x${size.patchSize} patches -> Linear -> Llama ${size.numLayers} layers x ${size.hiddenSize}; image tokens (patches + row breaks) ` +
      `seen ${FINE_DETAIL_SEEN_SIZES.map(tokens).join(', ')}; unseen ${FINE_DETAIL_UNSEEN_SIZES.map(tokens).join(', ')}; outputs in ${out}/`,
  );

  const result = await clock.stage('train', () => runFuyu(options));
  try {
    const check = await clock.stage('checkpoint', () => checkTrainableCheckpoint(result, size, seed, join(out, 'fuyu-trainable.safetensors')));
    const examples = [...result.heldOut.seen, ...result.heldOut.unseen];
    const answers: Pick<ExactMatch, 'answers' | 'correct'> = {
      answers: [...result.final.seen.answers, ...result.final.unseen.answers],
      correct: [...result.final.seen.correct, ...result.final.unseen.correct],
    };
    writeAnswerGrid(join(out, 'test-answers.png'), examples, answers, { types, count: 24, columns: 6 });
    await writeLossCurve(out, ['text', 'image'].map((phase) => ({ name: phase, path: join(out, `metrics-${phase}.jsonl`) })));

    const failures: string[] = [];
    for (const type of types) {
      const seen = result.final.seen.byType[type]!.accuracy;
      const unseen = result.final.unseen.byType[type]!.accuracy;
      const baseline = result.baseline.seen.byType[type]!.accuracy;
      if (seen < TARGET) failures.push(`${type} questions: ${percent(seen)} on the seen sizes < the ${percent(TARGET)} target`);
      if (seen - baseline < BASELINE_MARGIN) failures.push(`${type} questions: the text-only baseline (${percent(baseline)}) is within ${percent(BASELINE_MARGIN)} of the model (${percent(seen)})`);
      if (seen - unseen > UNSEEN_MARGIN) failures.push(`${type} questions: ${percent(unseen)} on the unseen sizes, more than ${percent(UNSEEN_MARGIN)} below the seen sizes (${percent(seen)})`);
    }
    if (check.same !== check.compared) failures.push(`the reloaded checkpoint answered ${check.compared - check.same} of ${check.compared} held-out questions differently`);

    const timing = clock.timing();
    writeJson(join(out, 'metrics.json'), {
      passed: failures.length === 0,
      failures,
      target: { types, accuracy: TARGET, baselineMargin: BASELINE_MARGIN, unseenMargin: UNSEEN_MARGIN },
      heldOut: { seenPerType: options.heldOutPerType, unseenPerType: options.unseenPerType, seenSizes: FINE_DETAIL_SEEN_SIZES.map(sizeKey), unseenSizes: FINE_DETAIL_UNSEEN_SIZES.map(sizeKey) },
      exactMatch: {
        fuyu: { seen: accuracies(result.final.seen), unseen: accuracies(result.final.unseen), all: accuracies(scoreExamples(examples, answers.correct)) },
        textOnlyBaseline: { seen: accuracies(result.baseline.seen), unseen: accuracies(result.baseline.unseen) },
      },
      phases: result.phases,
      checkpoint: check,
      timing: { ...timing, stages: clock.stages },
      machine: { backend: backend.backend, fastPaths: backend.fastPaths },
      config: { seed, batchSize: options.batchSize, types, shapesPerImage: options.shapesPerImage, size, text: options.text, image: options.image, weightDecay, parameters: result.parameterCount },
    });

    console.log(`\nheld-out exact match (${options.heldOutPerType} questions per type on the seen sizes, ${options.unseenPerType} on the unseen):`);
    const columns = [
      { name: 'Fuyu seen', score: result.final.seen },
      { name: 'Fuyu unseen', score: result.final.unseen },
      { name: 'text-only', score: result.baseline.seen },
    ];
    for (const line of comparisonTable(columns, types)) console.log(`  ${line}`);
    const seenKeys = FINE_DETAIL_SEEN_SIZES.map(sizeKey);
    for (const line of sizeTable(scoreExamples(examples, answers.correct), seenKeys)) console.log(`  ${line}`);
    console.log(
      `checkpoint: ${check.savedTensors} of ${check.totalTensors} parameter tensors (${(check.bytes / 1024).toFixed(0)} KB) reloaded onto a fresh model: ` +
        `${check.same}/${check.compared} answers the same`,
    );
    console.log(`time: ${clock.summary()}; backend ${backend.backend}`);
    console.log(`outputs: ${out}/ (metrics.json, loss.png, test-answers.png, fuyu-trainable.safetensors, metrics-{text,image}.jsonl)`);
    if (failures.length) {
      console.error(`FAIL: ${failures.join('; ')}`);
      return 1;
    }
    console.log(`PASS: ${describeScore(result.final.seen, types)} on the seen sizes, ${describeScore(result.final.unseen, types)} on the unseen; text-only baseline far below`);
    return 0;
  } finally {
    result.model.dispose();
  }
}

/** 'min,max' (or one number) shapes per image. */
function shapeRange(name: string, text: string): { min: number; max: number } {
  const [min, max = min] = text.split(',').map((n) => int(name, n));
  if (min === undefined || !(min >= 1) || !(max >= min)) throw new UsageError(`--${name} must be min,max shapes per image (e.g. 1,3), got '${text}'`);
  return { min, max };
}

/** '32x32,48x32': image sizes, width x height. */
function sizeList(name: string, text: string): { width: number; height: number }[] {
  return text.split(',').map((item) => {
    const match = /^(\d+)x(\d+)$/.exec(item.trim());
    if (!match) throw new UsageError(`--${name} must be sizes like 32x32,48x32 (width x height), got '${text}'`);
    return { width: Number(match[1]), height: Number(match[2]) };
  });
}

void runScript(USAGE, main);
