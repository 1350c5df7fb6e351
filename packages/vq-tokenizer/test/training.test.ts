import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend, manualSeed } from '@chimera/core';
import { VQModel, evaluateVQ, trainVQ } from '../src/index';

// Synthetic 16x16 images made here: one coloured square or disc on a dark background.
const COLORS = [[0.9, 0.2, 0.2], [0.2, 0.8, 0.3], [0.25, 0.4, 0.95], [0.95, 0.85, 0.2]];
function images(count: number, seed: number): tf.Tensor4D {
  let state = seed * 7919 + 1;
  const rand = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const data = new Float32Array(count * 16 * 16 * 3);
  for (let n = 0; n < count; n++) {
    const color = COLORS[Math.floor(rand() * COLORS.length)]!;
    const size = 4 + Math.floor(rand() * 6);
    const x0 = Math.floor(rand() * (16 - size));
    const y0 = Math.floor(rand() * (16 - size));
    const disc = rand() < 0.5;
    const bg = 0.05 + 0.1 * rand();
    for (let y = 0; y < 16; y++) {
      for (let x = 0; x < 16; x++) {
        const dx = x + 0.5 - (x0 + size / 2);
        const dy = y + 0.5 - (y0 + size / 2);
        const inside = disc ? dx * dx + dy * dy <= (size / 2) ** 2 : x >= x0 && x < x0 + size && y >= y0 && y < y0 + size;
        for (let c = 0; c < 3; c++) data[((n * 16 + y) * 16 + x) * 3 + c] = 2 * (inside ? color[c]! : bg) - 1;
      }
    }
  }
  return tf.tensor4d(data, [count, 16, 16, 3]);
}

const CONFIG = { channels: 16, channelMult: [1, 2, 2], numResBlocks: 1, zChannels: 32, codebookSize: 64, codebookDim: 8, normGroups: 8, attention: false };

beforeAll(async () => {
  await initBackend();
});

describe('trainVQ', () => {
  it('learns to reconstruct held-out images far better than the mean image, using most of its codes', async () => {
    manualSeed(3);
    const model = new VQModel(CONFIG);
    const heldOut = images(128, 999);
    const before = evaluateVQ(model, heldOut);
    // The PSNR of predicting the mean held-out image: what a model that ignores its input can reach.
    const meanPsnr = tf.tidy(() => {
      const mse = tf.mean(tf.square(tf.sub(heldOut, tf.mean(heldOut, 0, true)))).dataSync()[0]!;
      return 10 * Math.log10(4 / mse);
    });
    const start = process.cpuUsage();
    const usages: number[] = [];
    let restarted = 0;
    const steps = 400;
    const result = await trainVQ({
      model,
      steps,
      batchAt: (step) => images(16, step + 1),
      optimizer: { learningRate: 2e-3, weightDecay: 0 },
      restartEvery: 25,
      deadAfter: 25,
      usageWindow: 25,
      onStep: (_, health) => {
        usages.push(health.usage);
        restarted += health.restarted;
      },
    });
    const cpu = process.cpuUsage(start);
    const after = evaluateVQ(model, heldOut);
    const losses = result.history.map((m) => m.loss!);
    const first = losses.slice(0, 20).reduce((a, b) => a + b) / 20;
    const last = losses.slice(-20).reduce((a, b) => a + b) / 20;
    console.info(
      `VQ ${steps} steps: loss ${first.toFixed(3)} -> ${last.toFixed(3)}; held-out PSNR ${before.psnr.toFixed(1)} -> ${after.psnr.toFixed(1)} dB ` +
        `(mean image ${meanPsnr.toFixed(1)} dB); held-out usage ${after.usage.toFixed(2)}, perplexity ${after.perplexity.toFixed(1)}; ` +
        `training usage ${usages.at(-1)!.toFixed(2)}; ${restarted} restarts; ${((cpu.user + cpu.system) / 1e6).toFixed(0)} s CPU`,
    );
    expect(last).toBeLessThan(first / 2);
    expect(after.psnr).toBeGreaterThan(meanPsnr + 3); // 400 steps reach about +5 dB
    expect(usages.at(-1)!).toBeGreaterThanOrEqual(0.8);
    heldOut.dispose();
    model.dispose();
  });
});
