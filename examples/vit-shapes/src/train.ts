/**
 * The training script: trains a small ViT from scratch to classify the kind of the shape in generated images,
 * on the default backend, prints progress, and writes the Trainer's metrics, the evaluations, a result summary
 * and a PNG grid of held-out images with their predictions.
 *
 *   npm run train -- [--help] [--seed 1] [--steps N] ...   (USAGE below lists every option)
 */
import { join } from 'node:path';
import { initBackend, type BackendName } from '@chimera/core';
import type { ViTPositions } from '@chimera/vision-encoder';
import { SHAPE_KINDS, imageGrid, isShapeKind, type ShapeKind } from '@chimera-examples/shapes-dataset';
import { writePng } from '@chimera-examples/shapes-dataset/png';
import { RunClock, UsageError, int, optionalInt, parseFlags, runDirectory, runScript, writeJson, writeJsonLines, writeLossCurve } from '@chimera-examples/kit';
import { percent, runExperiment } from './experiment';
import { DEFAULT_CLASSIFIER_SIZE, type ClassifierSize, type Pooling } from './model';

const USAGE = `npm run train -- [options]     (the values shown are the defaults)
  --seed 1 --steps 1500 --batch 32 --lr 5e-3
  --kinds circle,square,...   shape kinds to classify (default: all)
  --shape-size 0.3,0.6        min,max shape size as fractions of the image side
  --pooling mean|cls          default mean
  --size 24 --patch 4 --hidden N --layers N --heads N --ffn N --positions learned|rope2d   the ViT (defaults: model.ts)
  --test 2000                 held-out images scored
  --eval-every 250            validation accuracy every N steps (0: never)
  --out runs                  output root (a seed<N>/ folder is made in it)
  --backend wasm|cpu          default: initBackend()'s choice`;

const TARGET = 0.95;

async function main(): Promise<void> {
  const clock = new RunClock();
  const values = parseFlags({
    usage: USAGE,
    options: {
      seed: { type: 'string', default: '1' },
      steps: { type: 'string', default: '1500' },
      batch: { type: 'string', default: '32' },
      lr: { type: 'string', default: '5e-3' },
      kinds: { type: 'string', default: SHAPE_KINDS.join(',') },
      'shape-size': { type: 'string', default: '0.3,0.6' },
      pooling: { type: 'string', default: 'mean' },
      size: { type: 'string' },
      patch: { type: 'string' },
      hidden: { type: 'string' },
      layers: { type: 'string' },
      heads: { type: 'string' },
      ffn: { type: 'string' },
      positions: { type: 'string' },
      test: { type: 'string', default: '2000' },
      'eval-every': { type: 'string', default: '250' },
      out: { type: 'string', default: 'runs' },
      backend: { type: 'string' },
    },
  });
  const kinds = values.kinds!.split(',').map((k) => k.trim());
  const unknown = kinds.filter((k) => !isShapeKind(k));
  if (unknown.length) throw new UsageError(`--kinds: unknown kind(s) ${unknown.join(', ')}; choose from ${SHAPE_KINDS.join(', ')}`);
  if (values.pooling !== 'mean' && values.pooling !== 'cls') throw new UsageError(`--pooling must be mean or cls, got '${values.pooling}'`);
  const backend = await initBackend(values.backend ? { backend: values.backend as BackendName } : {});
  console.log(`backend: ${backend.backend}`);
  const seed = int('seed', values.seed!);
  const model: ClassifierSize = {
    imageSize: optionalInt('size', values.size) ?? DEFAULT_CLASSIFIER_SIZE.imageSize,
    patchSize: optionalInt('patch', values.patch) ?? DEFAULT_CLASSIFIER_SIZE.patchSize,
    hiddenSize: optionalInt('hidden', values.hidden) ?? DEFAULT_CLASSIFIER_SIZE.hiddenSize,
    numLayers: optionalInt('layers', values.layers) ?? DEFAULT_CLASSIFIER_SIZE.numLayers,
    numHeads: optionalInt('heads', values.heads) ?? DEFAULT_CLASSIFIER_SIZE.numHeads,
    intermediateSize: optionalInt('ffn', values.ffn) ?? DEFAULT_CLASSIFIER_SIZE.intermediateSize,
    positions: (values.positions ?? DEFAULT_CLASSIFIER_SIZE.positions) as ViTPositions,
  };
  if (model.positions !== 'learned' && model.positions !== 'rope2d') throw new UsageError(`--positions must be learned or rope2d, got '${model.positions}'`);
  const fractions = values['shape-size']!.split(',').map(Number);
  if (!(fractions.length === 2 && fractions[0]! > 0 && fractions[1]! > fractions[0]! && fractions[1]! < 1)) {
    throw new UsageError(`--shape-size must be two fractions of the image side, min,max (e.g. 0.22,0.45), got '${values['shape-size']}'`);
  }
  const shapeSize = { min: fractions[0]! * model.imageSize, max: fractions[1]! * model.imageSize };
  const steps = int('steps', values.steps!);
  const batchSize = int('batch', values.batch!);
  const learningRate = Number(values.lr);
  if (!(learningRate > 0)) throw new UsageError(`--lr must be a positive number, got '${values.lr}'`);

  const runDir = runDirectory('vit-shapes', values.out!, `seed${seed}`);
  const evals: unknown[] = [];
  const result = await runExperiment({
    data: { kinds: kinds as ShapeKind[], shapeSize },
    model,
    pooling: values.pooling as Pooling,
    steps,
    batchSize,
    learningRate,
    seed,
    testExamples: int('test', values.test!),
    evalEvery: int('eval-every', values['eval-every']!),
    metricsPath: join(runDir, 'metrics.jsonl'),
    progress: 'auto',
    log: (line) => console.log(line),
    onEval: (point) => evals.push(point),
  });

  const { cpuSeconds: cpu } = clock.timing();
  const cpuSeconds = cpu.user + cpu.system;
  const { after, dataset } = result;
  const names = dataset.kinds;
  console.log(`confusion (rows: truth, columns: predicted; ${names.join(', ')}):`);
  after.confusion.forEach((row, i) => console.log(`  ${names[i]!.padEnd(9)} ${row.map((n) => String(n).padStart(5)).join('')}`));

  // The first 32 held-out images with their predictions (green: right, red: wrong).
  const tiles = Array.from({ length: Math.min(32, after.total) }, (_, i) => {
    const sample = dataset.classification('test', i);
    const predicted = names[after.predictions[i]!]!;
    const right = predicted === sample.kind;
    return {
      image: sample.image,
      caption: [`${predicted}`, right ? 'right' : `(is ${sample.kind})`],
      captionColor: right ? ([120, 220, 120] as const) : ([240, 90, 90] as const),
    };
  });
  const gridPath = join(runDir, 'test-predictions.png');
  writePng(gridPath, imageGrid(tiles));

  writeJsonLines(join(runDir, 'eval.jsonl'), evals);
  await writeLossCurve(runDir, [{ name: 'train', path: join(runDir, 'metrics.jsonl') }, { name: 'held-out', path: join(runDir, 'eval.jsonl') }]);
  const report = {
    seed,
    backend: backend.backend,
    kinds: names,
    shapeSize,
    model,
    pooling: values.pooling,
    parameterCount: result.parameterCount,
    steps,
    batchSize,
    learningRate,
    trainingImages: steps * batchSize,
    heldOutImages: after.total,
    accuracyBefore: result.before.accuracy,
    accuracyAfter: after.accuracy,
    confusion: after.confusion,
    trainSeconds: result.trainSeconds,
    totalSeconds: result.totalSeconds,
    cpuSeconds,
  };
  writeJson(join(runDir, 'result.json'), report);
  const passed = after.accuracy >= TARGET;
  console.log(
    `\nheld-out accuracy ${percent(after.accuracy)} on ${after.total} test images (before training ${percent(result.before.accuracy)}, ` +
      `chance ${percent(1 / names.length)}), ${result.totalSeconds.toFixed(0)} s wall (${result.trainSeconds.toFixed(0)} s in training steps), ` +
      `${cpuSeconds.toFixed(0)} s of CPU time ` +
      `${passed ? 'PASS' : 'FAIL'} (target ${percent(TARGET)})\nresults in ${runDir}/ (result.json, metrics.jsonl, eval.jsonl, loss.png, test-predictions.png)`,
  );
  result.model.dispose();
  if (!passed) process.exitCode = 1;
}

void runScript(USAGE, main);
