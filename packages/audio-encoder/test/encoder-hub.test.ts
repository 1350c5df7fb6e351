// loadHFWhisperEncoder('org/name') against a stand-in Hub on 127.0.0.1 (no network): an exported tiny Whisper
// encoder is served, downloaded into the HF cache, loaded by id with the same weights, and a second load asks nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manualSeed } from '@chimera/core';
import { setupTestBackend, startHubTestServer, type HubTestServer } from '@chimera/core/testing';
import { tinyWhisperEncoder } from '../src/encoder/config';
import { WhisperEncoder } from '../src/encoder/encoder';
import { exportHFWhisperEncoder, loadHFWhisperEncoder } from '../src/encoder/hf-import';

let hub: HubTestServer;
let root: string;

beforeAll(async () => {
  await setupTestBackend('cpu');
  hub = await startHubTestServer();
  root = mkdtempSync(join(tmpdir(), 'chimera-whisper-hub-'));
});
afterAll(async () => {
  await hub.close();
  rmSync(root, { recursive: true, force: true });
});

describe('loadHFWhisperEncoder from the Hub', () => {
  it('downloads an exported encoder by id, loads the same weights, and answers again from the cache', async () => {
    manualSeed(4);
    const encoder = new WhisperEncoder(tinyWhisperEncoder());
    try {
      await exportHFWhisperEncoder(encoder, join(root, 'export'));
      await hub.addCommit('chimera-test/tiny-whisper', join(root, 'export'));
      const options = { endpoint: hub.url, cacheDir: join(root, 'cache'), env: {}, progress: false as const };
      const loaded = await loadHFWhisperEncoder('chimera-test/tiny-whisper', options);
      try {
        const ours = encoder.stateDict();
        const theirs = loaded.stateDict();
        expect(Object.keys(theirs).sort()).toEqual(Object.keys(ours).sort());
        for (const name of Object.keys(ours)) expect(Array.from(theirs[name]!.dataSync())).toEqual(Array.from(ours[name]!.dataSync()));
      } finally {
        loaded.dispose();
      }
      const before = hub.requests.length;
      (await loadHFWhisperEncoder('chimera-test/tiny-whisper', options)).dispose();
      expect(hub.requests.length).toBe(before);
    } finally {
      encoder.dispose();
    }
  });
});
