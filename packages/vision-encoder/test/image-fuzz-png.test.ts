/**
 * PNG fuzzing against PIL. Each case is a generated PNG (any colour type, bit depth, size, interlace, filter
 * types, palette and transparency) damaged at one or more levels: its filtered scanlines (then recompressed
 * validly), its zlib stream, its chunk list, or its bytes. Every case is decoded twice by Chimera and once by PIL.
 *
 * What must hold, case by case:
 * - no crash (only ImageInputError, naming the source), no decode over 5 s, the same answer twice;
 * - no silent misread: Chimera accepts nothing the test's own checker (inspectPng: chunk walk, CRCs, zlib,
 *   sizes, filter types) finds damaged, and when both accept, the pixels are PIL's exactly (16-bit colour:
 *   see comparePngWithPil), alpha composites included;
 * - Chimera never accepts what PIL refuses;
 * - Chimera refuses what PIL accepts only for a named reason the checker confirms (PNG_PIL_LENIENCY).
 *
 * Case count: CHIMERA_FUZZ_RUNS (npm run fuzz: 10,000), else the reduced count below for CI.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { fuzzRuns, fuzzTimeout } from '@chimera/core/testing';
import { decodeImageSync } from '../src/image/decode';
import { comparePngWithPil, decodeTwice, inspectPng, PIXEL_NEUTRAL_ISSUES, pilOnWhite, Tally, type PngIssue } from './fuzz-helpers';
import { buildPng, opArb, specArb, type Op, type Spec } from './fuzz-png-cases';
import { PilOracle, pilAvailable } from './pil-oracle';

const MAX_PIXELS = 2_000_000;
const RUNS = fuzzRuns(4000);

/**
 * Defects PIL does not notice, so it decodes files Chimera refuses. Each is a real defect (the checker finds it)
 * and the file is refused because its pixels cannot be trusted or are ambiguous.
 */
const PNG_PIL_LENIENCY: Partial<Record<PngIssue | 'palette-index', string>> = {
  crc: 'PIL checks the CRCs of the chunks it parses before the image data only, never of IDAT or later chunks',
  zlib: 'PIL stops inflating once it has its rows: it never sees a truncated end, a bad Adler-32 or damage after them',
  'data-length': 'PIL stops inflating once it has its rows, so excess image data goes unnoticed',
  'chunk-structure': 'PIL reads nothing after the image data: a missing IEND or a damaged later chunk goes unnoticed',
  'chunk-order': 'PIL does not check chunk order: IHDR not first, IDAT chunks split by others, PLTE late or repeated',
  'critical-chunk': 'PIL skips chunks it does not know, critical or not (the PNG spec says a decoder must refuse them)',
  method: 'PIL ignores the compression and filter method bytes of IHDR; PNG defines only method 0 for each',
  transparency: 'PIL applies a misplaced tRNS (libpng drops it): an ambiguous file',
  'palette-index': 'PIL maps palette indices beyond the PLTE entries to its padding colour; the spec calls them an error',
};

/**
 * The one defect PIL refuses and Chimera reads past: a metadata chunk too short for the fields PIL parses from
 * it (gAMA, pHYs, sRGB). It carries no pixel data; Chimera ignores these chunks, as libpng does with a warning.
 */
const PIL_STRICTNESS = { metadata: 'PIL parses gAMA/pHYs/sRGB and fails on a short one; no pixel depends on them' };
void PIL_STRICTNESS;

const describeCase = (s: Spec, ops: Op[]) => JSON.stringify({ spec: s, ops });

describe('PNG fuzzing against PIL', () => {
  const havePil = pilAvailable();

  it.skipIf(!havePil)(
    `${RUNS} generated and damaged PNGs: no crash, hang or misread; deterministic; PIL's pixels and verdicts`,
    async () => {
      const pil = new PilOracle(MAX_PIXELS);
      const tally = new Tally();
      const slowest = { ms: 0 };
      const started = performance.now();
      try {
        await fc.assert(
          fc.asyncProperty(specArb, fc.array(opArb, { maxLength: 3 }), async (s, ops) => {
            const bytes = buildPng(s, ops);
            const example = () => describeCase(s, ops);
            const inspection = inspectPng(bytes, MAX_PIXELS);
            const chimera = decodeTwice(bytes, { maxPixels: MAX_PIXELS, background: 'ignore' }, slowest);
            const theirs = await pil.decode(bytes);
            const pilOk = theirs.ok && theirs.format === 'PNG';
            tally.add(`cases ${ops.length === 0 ? 'intact' : 'damaged'}`);
            const damage = [...inspection.issues].filter((i) => !PIXEL_NEUTRAL_ISSUES.has(i));
            if (chimera.ok && damage.length > 0) {
              tally.add(`MISREAD: accepted a file with ${damage.join(', ')}`, example());
              return;
            }
            if (chimera.ok && pilOk) {
              tally.add('agree: both decode');
              const { image } = chimera;
              if (image.width !== theirs.width || image.height !== theirs.height) {
                tally.add('MISREAD: size differs from PIL', example());
                return;
              }
              const mismatch = comparePngWithPil(image, theirs, inspection.bitDepth);
              if (mismatch) tally.add(`MISREAD: pixels differ from PIL`, `${mismatch} in ${example()}`);
              // Alpha: Chimera's default composite on white against PIL's alpha (8-bit alpha only: PIL keeps
              // the high byte of 16-bit alpha).
              const onWhite = inspection.bitDepth <= 8 ? pilOnWhite(theirs, image.width * image.height) : null;
              if (onWhite) {
                const composited = decodeImageSync(bytes, { maxPixels: MAX_PIXELS });
                if (Buffer.compare(Buffer.from(composited.data), Buffer.from(onWhite)) !== 0) {
                  tally.add('MISREAD: alpha composite differs from PIL', example());
                } else tally.add('agree: alpha composite compared');
              }
              return;
            }
            if (chimera.ok && inspection.issues.has('metadata')) {
              tally.add('PIL strict: metadata'); // see PIL_STRICTNESS
              return;
            }
            if (chimera.ok) {
              tally.add('UNEXPLAINED: Chimera decodes, PIL refuses', `${theirs.ok ? theirs.format : theirs.error} in ${example()}`);
              return;
            }
            if (!pilOk) {
              tally.add(`agree: both refuse (${chimera.error.code})`);
              return;
            }
            // Chimera refuses, PIL decodes: name the defect, confirmed by the checker (or by PIL's own indices).
            const paletteIndex =
              theirs.ok && theirs.maxIndex !== undefined && inspection.colorType === 3 && theirs.maxIndex >= inspection.paletteEntries;
            const reason = [...inspection.issues].find((i) => PNG_PIL_LENIENCY[i]) ?? (paletteIndex ? 'palette-index' : null);
            if (reason) tally.add(`PIL lenient: ${reason}`);
            else tally.add('UNEXPLAINED: Chimera refuses, PIL decodes', `${chimera.error.message} in ${example()}`);
          }),
          { numRuns: RUNS, seed: 20251202, endOnFailure: true },
        );
      } finally {
        pil.close();
      }
      const seconds = (performance.now() - started) / 1000;
      console.log(tally.report(`PNG fuzz: ${RUNS} cases in ${seconds.toFixed(1)} s, slowest decode ${slowest.ms.toFixed(1)} ms`));
      expect(tally.keys('MISREAD'), tally.report('misreads')).toEqual([]);
      expect(tally.keys('UNEXPLAINED'), tally.report('unexplained disagreements with PIL')).toEqual([]);
      // The run must reach every verdict: intact files that decode, damaged ones refused, alpha compared.
      expect(tally.get('agree: both decode')).toBeGreaterThan(RUNS * 0.15);
      expect(tally.total('agree: both refuse')).toBeGreaterThan(RUNS * 0.15);
      expect(tally.get('agree: alpha composite compared')).toBeGreaterThan(RUNS * 0.01);
      expect(tally.total('PIL lenient')).toBeGreaterThan(0);
    },
    fuzzTimeout(RUNS, 20),
  );
});
