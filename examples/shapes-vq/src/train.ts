/**
 * Trains the shapes VQ tokenizer, reports held-out PSNR, codebook usage and the judge's score on reconstructions,
 * saves it where `loadOrTrainShapesVQ` looks, and writes result.json, metrics.jsonl, loss.png and a grid of real
 * images beside their reconstructions.
 *
 *   npm run train -- [--steps 600] [--batch 16] [--lr 2e-3] [--seed 0] [--test 500] [--out runs]
 */
import { join } from 'node:path';
import { initBackend, saveCheckpoint } from '@chimera/core';
import { imageGrid } from '@chimera-examples/shapes-dataset';
import { writePng } from '@chimera-examples/shapes-dataset/png';
import { loadOrTrainJudge } from '@chimera-examples/shapes-judge';
import { RunClock, int, parseFlags, positive, runDirectory, runScript, writeJson, writeLossCurve } from '@chimera-examples/kit';
import { heldOutImages, reconstruct, reportShapesVQ, trainShapesVQ } from './shapes-vq';

const USAGE = `npm run train -- [options]     (the values shown are the defaults)
  --steps 600 --batch 16 --lr 2e-3 --seed 0
  --test 500        held-out images scored
  --channel-mult 1,1,2,2   override the preset's levels (1,2,2: 4x downsampling, an 8x8 grid)
  --l2-norm true|false     override the preset's l2-normalised codes
  --out runs        output root (the tokenizer goes to <out>/shapes-vq/vq.safetensors)`;

// Acceptance of issue 15: codebook usage >= 80%, the judge names >= 95% of reconstructions.
const USAGE_TARGET = 0.8;
const JUDGE_TARGET = 0.95;

async function main(): Promise<number> {
  const clock = new RunClock();
  const values = parseFlags({
    usage: USAGE,
    options: {
      steps: { type: 'string', default: '600' },
      batch: { type: 'string', default: '16' },
      lr: { type: 'string', default: '2e-3' },
      seed: { type: 'string', default: '0' },
      test: { type: 'string', default: '500' },
      out: { type: 'string' },
      'channel-mult': { type: 'string' },
      'l2-norm': { type: 'string' },
    },
  });
  const backend = await initBackend();
  console.log(`backend: ${backend.backend}`);
  const runDir = runDirectory('shapes-vq', values.out);
  const judge = await loadOrTrainJudge(undefined, (line) => console.log(line));
  const metricsPath = join(runDir, 'metrics.jsonl');
  const steps = int('steps', values.steps!, 1);
  let lastUsage = 0;
  const model = await trainShapesVQ({
    steps,
    batchSize: int('batch', values.batch!, 1),
    learningRate: positive('lr', values.lr!),
    seed: int('seed', values.seed!),
    config: {
      ...(values['channel-mult'] ? { channelMult: values['channel-mult'].split(',').map((m) => int('channel-mult', m, 1)) } : {}),
      ...(values['l2-norm'] ? { codebookL2Norm: values['l2-norm'] === 'true' } : {}),
    },
    metricsPath,
    progress: 'auto',
    onStep: (m, health) => {
      lastUsage = health.usage;
      if ((m.step + 1) % 100 === 0) console.log(`step ${m.step + 1}/${steps}  loss ${m.loss?.toFixed(4)}  usage ${(100 * health.usage).toFixed(1)}%  perplexity ${health.perplexity.toFixed(1)}`);
    },
  });
  const report = reportShapesVQ(model, judge, int('test', values.test!, 1));
  console.log(
    `held-out: PSNR ${report.psnr.toFixed(2)} dB, codes used ${(100 * report.usage).toFixed(1)}% (perplexity ${report.perplexity.toFixed(1)}); ` +
      `training usage ${(100 * lastUsage).toFixed(1)}%; judge on reconstructions: kind ${pct(report.judged.kind)}, colour ${pct(report.judged.color)}, both ${pct(report.judged.both)} ` +
      `(real images: ${pct(report.judgedReal.both)})`,
  );
  const path = join(runDir, 'vq.safetensors');
  await saveCheckpoint(model, path, { metadata: { format: 'chimera-shapes-vq-1' } });
  const samples = heldOutImages(24);
  const rebuilt = reconstruct(model, samples);
  const tiles = samples.flatMap((s, i) => [
    { image: s.image, caption: [s.prompt.slice(2), 'real'] },
    { image: rebuilt[i]!, caption: ['', 'reconstructed'] },
  ]);
  writePng(join(runDir, 'reconstructions.png'), imageGrid(tiles, { columns: 8, scale: 3 }));
  await writeLossCurve(runDir, [{ name: 'vq', path: metricsPath }]);
  const timing = clock.timing();
  const pass = lastUsage >= USAGE_TARGET && report.judged.both >= JUDGE_TARGET;
  writeJson(join(runDir, 'result.json'), { steps, ...report, trainingUsage: lastUsage, targets: { usage: USAGE_TARGET, judge: JUDGE_TARGET }, pass, ...timing });
  console.log(`wrote ${path}, reconstructions.png, loss.png, result.json; ${timing.wallSeconds.toFixed(0)} s wall, ${(timing.cpuSeconds.user + timing.cpuSeconds.system).toFixed(0)} s CPU`);
  model.dispose();
  judge.dispose();
  return pass ? 0 : 1;
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

void runScript(USAGE, main);
