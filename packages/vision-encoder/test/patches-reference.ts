// Runs test/reference/patches_reference.py (the published Qwen2-VL / InternVL / Fuyu rules) on a JSON spec.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTorchScript } from '@chimera/core/testing';

const SCRIPT = fileURLToPath(new URL('./reference/patches_reference.py', import.meta.url));

export interface PatchesReferenceSpec {
  smart_resize?: [number, number, number, number, number][];
  tile_grid?: [number, number, number, number, number][];
  pixel_shuffle?: { data: number[]; shape: number[]; scale: number; version: 'v1' | 'v2' }[];
  fuyu_patchify?: { data: number[]; shape: number[]; patch: number }[];
  qwen_merge?: { data: number[]; shape: number[]; merge: number }[];
}

export interface PatchesReferenceResult {
  smart_resize: [number, number][];
  tile_grid: [number, number][];
  pixel_shuffle: number[][];
  fuyu_patchify: number[][];
  qwen_merge: number[][];
}

export function runPatchesReference(spec: PatchesReferenceSpec): PatchesReferenceResult {
  const dir = mkdtempSync(join(tmpdir(), 'chimera-patches-'));
  try {
    const path = join(dir, 'spec.json');
    writeFileSync(path, JSON.stringify(spec));
    return JSON.parse(runTorchScript(SCRIPT, [path])) as PatchesReferenceResult;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
