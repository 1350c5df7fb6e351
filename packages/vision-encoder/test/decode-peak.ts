/**
 * Decodes one file in a fresh process and prints what it cost, as JSON: wall time, and how far the process's
 * peak resident memory (maxRSS) rose during the decode. Run by image-budget.test.ts with vite-node:
 *   vite-node test/decode-peak.ts <file> [DecodeOptions as JSON]
 */
import { readFileSync } from 'node:fs';
import { decodeImageSync } from '../src/image/decode';

const [file, options] = process.argv.slice(2);
const bytes = readFileSync(file);
const before = process.resourceUsage().maxRSS; // kilobytes
const start = performance.now();
let outcome: string;
try {
  const image = decodeImageSync(bytes, options ? JSON.parse(options) : {});
  outcome = `decoded ${image.width}x${image.height}`;
} catch (err) {
  outcome = `${(err as { code?: string }).code ?? 'error'}: ${(err as Error).message}`;
}
const ms = performance.now() - start;
const peakRiseMB = (process.resourceUsage().maxRSS - before) / 1024;
console.log(JSON.stringify({ ms, peakRiseMB, outcome }));
