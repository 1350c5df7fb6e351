import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@chimera/core';
import { Judge, buildJudgeNet } from '@chimera-examples/shapes-judge';
import { heldOutImages, reconstruct, reportShapesVQ, toPixels, trainShapesVQ } from '../src/index';

// A reduced run: 150 steps of 8 images (the full run is 600 of 16). Colours need the full run (the judge names
// them on 16% of the reconstructions after 150 steps, 100% after 600), so this checks PSNR and code use; an
// untrained judge only exercises the report.
beforeAll(async () => {
  await initBackend();
});

describe('shapes VQ tokenizer (reduced run)', () => {
  it('reconstructs held-out generation images far above the mean image, using most of its codes', async () => {
    let usage = 0;
    const start = process.cpuUsage();
    const model = await trainShapesVQ({ steps: 150, batchSize: 8, onStep: (_, health) => (usage = health.usage) });
    const cpu = process.cpuUsage(start);
    const judge = new Judge(buildJudgeNet(0));
    const report = reportShapesVQ(model, judge, 200);
    judge.dispose();
    const meanPsnr = tf.tidy(() => {
      const pixels = toPixels(heldOutImages(200).map((s) => s.image));
      return 10 * Math.log10(4 / tf.mean(tf.square(tf.sub(pixels, tf.mean(pixels, 0, true)))).dataSync()[0]!);
    });
    console.info(
      `shapes VQ, 150 steps: PSNR ${report.psnr.toFixed(1)} dB (mean image ${meanPsnr.toFixed(1)}), training usage ${usage.toFixed(2)}, ` +
        `held-out usage ${report.usage.toFixed(2)}; ` +
        `${((cpu.user + cpu.system) / 1e6).toFixed(0)} s CPU`,
    );
    expect(report.psnr).toBeGreaterThan(meanPsnr + 3);
    expect(usage).toBeGreaterThanOrEqual(0.5);
    expect(report.judged.total).toBe(200);
    const rebuilt = reconstruct(model, heldOutImages(2));
    expect(rebuilt.map((r) => [r.width, r.height, r.data.length])).toEqual([[32, 32, 3072], [32, 32, 3072]]);
    model.dispose();
  });
});
