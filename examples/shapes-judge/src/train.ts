/**
 * Trains the judge, scores it on held-out real images (plain and softened), saves it where `loadOrTrainJudge`
 * looks (so the generating examples reuse it), and writes result.json, metrics.jsonl, loss.png and a grid of judged
 * test images.
 *
 *   npm run train -- [--seed 0] [--steps 1000] [--test 2000] [--out runs]
 */
import { join } from 'node:path';
import { initBackend } from '@chimera/core';
import { generationSample, imageGrid } from '@chimera-examples/shapes-dataset';
import { writePng } from '@chimera-examples/shapes-dataset/png';
import { RunClock, int, parseFlags, runDirectory, runScript, writeJson, writeLossCurve } from '@chimera-examples/kit';
import { judgeDataset, trainJudge } from './judge';

const USAGE = `npm run train -- [options]     (the values shown are the defaults)
  --seed 0 --steps 1000
  --test 2000       held-out images scored
  --out runs        output root (the judge goes to <out>/shapes-judge/judge.safetensors)`;

const TARGET = 0.98;

async function main(): Promise<number> {
  const clock = new RunClock();
  const values = parseFlags({
    usage: USAGE,
    options: {
      seed: { type: 'string', default: '0' },
      steps: { type: 'string', default: '1000' },
      test: { type: 'string', default: '2000' },
      out: { type: 'string' },
    },
  });
  const backend = await initBackend();
  console.log(`backend: ${backend.backend}`);
  const runDir = runDirectory('shapes-judge', values.out);
  const metricsPath = join(runDir, 'metrics.jsonl');
  const steps = int('steps', values.steps!, 1);
  const judge = await trainJudge({ seed: int('seed', values.seed!), steps, metricsPath, progress: 'auto' });
  const count = int('test', values.test!, 1);
  const plain = judge.scoreReal('test', count);
  const soft = judge.scoreReal('test', count, true);
  console.log(`held-out real images (${count}): kind ${pct(plain.kind)}, colour ${pct(plain.color)}, both ${pct(plain.both)}`);
  console.log(`softened (2x down and up): kind ${pct(soft.kind)}, colour ${pct(soft.color)}, both ${pct(soft.both)}`);
  const judgePath = join(runDir, 'judge.safetensors');
  await judge.save(judgePath);

  const dataset = judgeDataset();
  const samples = Array.from({ length: 36 }, (_, i) => generationSample(dataset, 'test', i));
  const verdicts = judge.judge(samples.map((s) => s.image));
  const tiles = samples.map((s, i) => {
    const v = verdicts[i]!;
    const right = v.kind === s.kind && v.color === s.color;
    return {
      image: s.image,
      caption: [`${v.color} ${v.kind}`, right ? 'right' : `(is ${s.color} ${s.kind})`],
      captionColor: right ? ([120, 220, 120] as const) : ([240, 90, 90] as const),
    };
  });
  writePng(join(runDir, 'judged.png'), imageGrid(tiles, { columns: 9, scale: 3 }));
  await writeLossCurve(runDir, [{ name: 'judge', path: metricsPath }]);
  const timing = clock.timing();
  writeJson(join(runDir, 'result.json'), { steps, test: count, real: plain, softened: soft, target: TARGET, ...timing });
  console.log(`wrote ${judgePath}, judged.png, loss.png, result.json in ${runDir}; ${timing.wallSeconds.toFixed(0)} s wall, ${(timing.cpuSeconds.user + timing.cpuSeconds.system).toFixed(0)} s CPU`);
  judge.dispose();
  return plain.kind >= TARGET && plain.color >= TARGET ? 0 : 1;
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

void runScript(USAGE, main);
