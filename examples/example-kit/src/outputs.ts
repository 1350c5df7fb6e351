/** Where a run's files go and how the JSON ones are written. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's runs/<example> folder: examples run as examples/<name>/dist/train.js (or src/*.ts). */
export function defaultRunsDir(example: string): string {
  return fileURLToPath(new URL(`../../../runs/${example}`, import.meta.url));
}

/** Resolves (and makes) `out` or the default runs/<example>, with an optional sub-folder such as `seed1`. */
export function runDirectory(example: string, out: string | undefined, sub?: string): string {
  const dir = resolve(out ?? defaultRunsDir(example), sub ?? '');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Pretty-printed JSON with a final newline (metrics.json, result.json). */
export function writeJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** JSON Lines (eval.jsonl): one value per line. */
export function writeJsonLines(path: string, values: readonly unknown[]): void {
  writeFileSync(path, values.map((v) => `${JSON.stringify(v)}\n`).join(''));
}
