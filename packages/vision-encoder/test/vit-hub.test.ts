// loadHFVisionTower('org/name') against a stand-in Hub on 127.0.0.1 (no network): an exported tiny CLIP tower is
// served, downloaded into the HF cache, loaded by id with the same weights, and a second load asks nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng, setupTestBackend, startHubTestServer, type HubTestServer } from '@chimera/core/testing';
import { tinyViT } from '../src/vit/config';
import { exportHFVisionTower, loadHFVisionTower } from '../src/vit/hf-import';
import { VisionTransformer } from '../src/vit/tower';

let hub: HubTestServer;
let root: string;

beforeAll(async () => {
  await setupTestBackend('cpu');
  hub = await startHubTestServer();
  root = mkdtempSync(join(tmpdir(), 'chimera-vit-hub-'));
});
afterAll(async () => {
  await hub.close();
  rmSync(root, { recursive: true, force: true });
});

describe('loadHFVisionTower from the Hub', () => {
  it('downloads an exported tower by id, loads the same weights, and answers again from the cache', async () => {
    const tower = new VisionTransformer(tinyViT({ numLayers: 2 }));
    const rng = new Rng(5);
    for (const [, v] of tower.namedParameters()) {
      tf.tidy(() => v.assign(tf.add(v, tf.tensor(Float32Array.from({ length: v.size }, () => 0.2 * rng.normal()), v.shape))));
    }
    try {
      await exportHFVisionTower(tower, join(root, 'export'));
      await hub.addCommit('chimera-test/tiny-clip', join(root, 'export'));
      const options = { endpoint: hub.url, cacheDir: join(root, 'cache'), env: {}, progress: false as const };
      const loaded = await loadHFVisionTower('chimera-test/tiny-clip', options);
      try {
        const ours = tower.stateDict();
        const theirs = loaded.stateDict();
        expect(Object.keys(theirs).sort()).toEqual(Object.keys(ours).sort());
        for (const name of Object.keys(ours)) expect(Array.from(theirs[name]!.dataSync())).toEqual(Array.from(ours[name]!.dataSync()));
      } finally {
        loaded.dispose();
      }
      const before = hub.requests.length;
      (await loadHFVisionTower('chimera-test/tiny-clip', options)).dispose();
      expect(hub.requests.length).toBe(before);
    } finally {
      tower.dispose();
    }
  });
});
