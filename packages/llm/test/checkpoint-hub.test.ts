// loadPretrained('org/name') end to end against a stand-in Hub on 127.0.0.1 (no network): a tiny Llama saved in
// HF layout by savePretrained (sharded, with a tokenizer) is served, downloaded into the HF cache, loaded by id,
// and computes the original's logits bit for bit; a second load asks nothing; a pinned commit loads the old model.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setupTestBackend, startHubTestServer, type HubTestServer } from '@chimera/core/testing';
import { loadPretrained, loadPretrainedWeights, type LoadPretrainedOptions } from '../src/checkpoint/load-pretrained';
import { savePretrained } from '../src/checkpoint/save-pretrained';
import { tinyLlama } from '../src/config';
import { CausalLM } from '../src/model/causal-lm';
import { HFTokenizer } from '../src/tokenizers/hf-tokenizer';
import { exactlyEqual, idsTensor, perturbNorms, randomIds } from './model-helpers';
import { byteLevelBpeFiles } from './tokenizers-fixtures';

const REPO = 'chimera-test/tiny-llama';
let hub: HubTestServer;
let root: string;

beforeAll(async () => {
  await setupTestBackend('cpu');
  hub = await startHubTestServer();
  root = mkdtempSync(join(tmpdir(), 'chimera-llm-hub-'));
});
afterAll(async () => {
  await hub.close();
  rmSync(root, { recursive: true, force: true });
});

describe('loadPretrained from the Hub', () => {
  it('downloads by id into the HF cache, loads logits equal to the original, hits the cache, and pins a revision', async () => {
    const before = tf.memory().numTensors;
    const files = byteLevelBpeFiles();
    const tokenizer = HFTokenizer.fromJSON(files.tokenizerJson, files.tokenizerConfig);
    const config = tinyLlama({ vocabSize: tokenizer.vocabSize });
    const first = new CausalLM(config);
    const second = new CausalLM(config);
    tf.tidy(() => perturbNorms(second, 9));
    const ids = idsTensor(randomIds(2, 7, config.vocabSize, 3));
    try {
      // Two commits on main, the first tagged: sharded weights (small shards), config, generation config, tokenizer.
      await savePretrained(first, join(root, 'v1'), { tokenizer, maxShardBytes: 40_000 });
      expect(readdirSync(join(root, 'v1'))).toContain('model.safetensors.index.json');
      const oldCommit = await hub.addCommit(REPO, join(root, 'v1'), { tags: ['v1'] });
      await savePretrained(second, join(root, 'v2'), { tokenizer, maxShardBytes: 40_000 });
      const newCommit = await hub.addCommit(REPO, join(root, 'v2'));

      const options: LoadPretrainedOptions = { endpoint: hub.url, cacheDir: join(root, 'cache'), env: {}, progress: false };
      const start = hub.requests.length;
      const loaded = await loadPretrained(REPO, options);
      const shards = readdirSync(join(root, 'v2')).filter((f) => /^model-\d+-of-\d+\.safetensors$/.test(f));
      expect(shards.length).toBeGreaterThan(1);
      // revision, two paths-info calls (the files, then the index's shards), and each file once.
      expect(hub.since(start).filter((r) => r.url.includes('/cdn/')).length).toBe(shards.length);
      try {
        expect(tf.tidy(() => exactlyEqual(loaded.model.forward({ inputIds: ids }).logits, second.forward({ inputIds: ids }).logits))).toBe(true);
        expect(loaded.tokenizer!.encode('hello the world')).toEqual(tokenizer.encode('hello the world'));
      } finally {
        loaded.model.dispose();
      }

      // Cached: not a single request.
      const cachedFrom = hub.requests.length;
      const again = await loadPretrained(REPO, options);
      again.model.dispose();
      expect(hub.requests.length).toBe(cachedFrom);

      // Pinned to the first commit by tag and by hash: the first model's logits.
      for (const revision of ['v1', oldCommit]) {
        const old = await loadPretrained(REPO, { ...options, revision });
        try {
          expect(tf.tidy(() => exactlyEqual(old.model.forward({ inputIds: ids }).logits, first.forward({ inputIds: ids }).logits))).toBe(true);
        } finally {
          old.model.dispose();
        }
      }
      const snapshots = readdirSync(join(root, 'cache', 'models--chimera-test--tiny-llama', 'snapshots')).sort();
      expect(snapshots).toEqual([oldCommit, newCommit].sort());

      // Weights only, into an existing model.
      const target = new CausalLM(config);
      try {
        const report = await loadPretrainedWeights(target, REPO, { ...options, revision: oldCommit });
        expect(report.missing).toEqual([]);
        expect(tf.tidy(() => exactlyEqual(target.forward({ inputIds: ids }).logits, first.forward({ inputIds: ids }).logits))).toBe(true);
      } finally {
        target.dispose();
      }
    } finally {
      first.dispose();
      second.dispose();
      ids.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a missing model names the id, the revision and what to check', async () => {
    await expect(loadPretrained('chimera-test/no-such-model', { endpoint: hub.url, cacheDir: join(root, 'cache'), env: {}, revision: 'v2' })).rejects.toThrow(
      /hub: could not read model 'chimera-test\/no-such-model' at revision 'v2' on http:\/\/127\.0\.0\.1:\d+: not found \(404: Repository not found\)\. Check the id/,
    );
  });
});
