import { beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@chimera/core';
import { Judge, buildJudgeNet, loadJudge, trainJudge } from '../src/index';

// One judge trained here (about a minute of CPU) serves every check below.
let judge: Judge;
let trainCpuSeconds = 0;

beforeAll(async () => {
  await initBackend();
  const start = process.cpuUsage();
  judge = await trainJudge();
  const used = process.cpuUsage(start);
  trainCpuSeconds = (used.user + used.system) / 1e6;
});

describe('shapes judge', () => {
  it('names kind and colour of held-out real images (>= 98% each)', () => {
    const score = judge.scoreReal('test', 600);
    console.info(`judge on 600 held-out images: kind ${score.kind}, colour ${score.color}, both ${score.both}; trained in ${trainCpuSeconds.toFixed(0)} s CPU`);
    expect(score.kind).toBeGreaterThanOrEqual(0.98);
    expect(score.color).toBeGreaterThanOrEqual(0.98);
  });

  it('still names softened images (a stand-in for decoded ones)', () => {
    const score = judge.scoreReal('test', 600, true);
    console.info(`judge on 600 softened held-out images: kind ${score.kind}, colour ${score.color}`);
    expect(score.both).toBeGreaterThanOrEqual(0.9);
  });

  it('an untrained judge scores near chance', () => {
    const fresh = new Judge(buildJudgeNet(5));
    const score = fresh.scoreReal('test', 300);
    fresh.dispose();
    expect(score.kind).toBeLessThan(0.45);
    expect(score.color).toBeLessThan(0.4);
  });

  it('reloads to the same verdicts, takes tensors too, and leaks nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'judge-'));
    try {
      const path = join(dir, 'judge.safetensors');
      await judge.save(path);
      const again = await loadJudge(path);
      const pixels = tf.randomUniform([4, 32, 32, 3], -1, 1) as tf.Tensor4D;
      const before = tf.memory().numTensors;
      const a = judge.judge(pixels);
      const b = again.judge(pixels);
      expect(tf.memory().numTensors).toBe(before);
      expect(b).toEqual(a);
      pixels.dispose();
      again.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses images of the wrong size, and a pair list of the wrong length', () => {
    const pixels = tf.zeros([1, 24, 24, 3]) as tf.Tensor4D;
    expect(() => judge.judge(pixels)).toThrow(/expected pixels \[B, 32, 32, 3\]/);
    pixels.dispose();
    const ok = tf.zeros([2, 32, 32, 3]) as tf.Tensor4D;
    expect(() => judge.score(ok, [{ kind: 'circle', color: 'red' }])).toThrow(/2 images but 1 wanted/);
    ok.dispose();
  });
});
