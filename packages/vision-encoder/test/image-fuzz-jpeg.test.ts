/**
 * JPEG fuzzing against PIL (libjpeg-turbo). Each case is a base JPEG (libjpeg-made fixtures covering baseline,
 * progressive, 4:4:4/4:2:2/4:2:0, restart intervals, gray and CMYK, or a jpeg-js encoding of random size and
 * quality) damaged inside its segments (frame, scan, table, restart and APP fields), its entropy-coded data (bit
 * flips, cuts, inserted markers) or its bytes. Every case is decoded twice by Chimera and once by PIL.
 *
 * What must hold, case by case:
 * - no crash (only ImageInputError, naming the source), no decode over 5 s, the same answer twice;
 * - when both decode, Chimera's pixels equal PIL's exactly (tolerance 0: the decoder implements libjpeg's islow
 *   IDCT, fancy upsampling and colour conversion, so there is no rounding difference to allow for);
 * - Chimera never decodes what PIL refuses;
 * - Chimera refuses what PIL decodes only for a named reason (JPEG_PIL_LENIENCY): damage libjpeg conceals with a
 *   warning that PIL does not surface, so PIL's pixels there are invented.
 *
 * Case count: CHIMERA_FUZZ_RUNS (npm run fuzz: 10,000), else the reduced count below for CI.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { fuzzRuns, fuzzTimeout } from '@chimera/core/testing';
import { decodeTwice, Tally } from './fuzz-helpers';
import { baseArb, buildJpeg, opArb } from './fuzz-jpeg-cases';
import { PilOracle, pilAvailable } from './pil-oracle';

const MAX_PIXELS = 2_000_000;
const RUNS = fuzzRuns(4000);

/**
 * Why PIL decodes files Chimera refuses, keyed by the start of Chimera's message. In each, libjpeg meets damage,
 * emits a warning that PIL does not surface, and invents the missing data: Chimera refuses instead.
 */
const JPEG_PIL_LENIENCY: [RegExp, string][] = [
  [/ends at marker .* before its last block/, 'libjpeg pads a scan whose data stops early with zero bits'],
  [/no code of its Huffman table/, 'libjpeg replaces an undecodable Huffman code with a zero coefficient'],
  [/expects restart marker/, 'libjpeg resynchronises at a missing or misnumbered restart marker, dropping or inventing blocks'],
  [/after dequantisation; an 8-bit JPEG/, "coefficients no 8-bit encoder can produce: libjpeg's pixels then depend on its SIMD overflow"],
  [/expected a marker at byte/, 'PIL and libjpeg skip stray bytes between header segments (libjpeg warns of extraneous bytes)'],
  [/cannot hold the .* image the header declares/, 'libjpeg pads the scan data missing for the frame size with zero bits'],
  [/after the image data: every row had been decoded/, "a file cut after its last row: PIL accepts it when libjpeg's look-ahead already produced every row, refuses it otherwise"],
  [/progressive scans stop before coefficient/, 'libjpeg estimates the coefficients missing scans never coded (block smoothing)'],
];

describe('JPEG fuzzing against PIL', () => {
  const havePil = pilAvailable();

  it.skipIf(!havePil)(
    `${RUNS} damaged JPEGs: no crash, hang or misread; deterministic; PIL's exact pixels and verdicts`,
    async () => {
      const pil = new PilOracle(MAX_PIXELS);
      const tally = new Tally();
      const slowest = { ms: 0 };
      const started = performance.now();
      try {
        await fc.assert(
          fc.asyncProperty(baseArb, fc.array(opArb, { maxLength: 3 }), async (base, ops) => {
            const bytes = buildJpeg(base, ops);
            const example = () => JSON.stringify({ base, ops });
            tally.add(`cases ${ops.length === 0 ? 'intact' : 'damaged'}`);
            const chimera = decodeTwice(bytes, { maxPixels: MAX_PIXELS }, slowest);
            const theirs = await pil.decode(bytes);
            const pilOk = theirs.ok && (theirs.format === 'JPEG' || theirs.format === 'MPO');
            if (chimera.ok && pilOk) {
              tally.add('agree: both decode');
              const { image } = chimera;
              if (image.width !== theirs.width || image.height !== theirs.height || theirs.mode !== 'RGB' && theirs.mode !== 'L') {
                tally.add('MISREAD: size or mode differs from PIL', `${theirs.mode} ${theirs.width}x${theirs.height} in ${example()}`);
                return;
              }
              const channels = theirs.mode === 'L' ? 1 : 3;
              for (let i = 0; i < image.width * image.height; i++) {
                for (let c = 0; c < 3; c++) {
                  const want = theirs.pixels[i * channels + (channels === 3 ? c : 0)];
                  if (image.data[3 * i + c] !== want) {
                    tally.add('MISREAD: pixels differ from PIL', `pixel ${i} channel ${c}: ${image.data[3 * i + c]} vs ${want} in ${example()}`);
                    return;
                  }
                }
              }
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
            const named = JPEG_PIL_LENIENCY.find(([pattern]) => pattern.test(chimera.error.message));
            if (named) tally.add(`PIL lenient: ${named[1]}`);
            else {
              const kind = chimera.error.message.replace(/^<\d+ bytes>: /, '').replace(/\d+/g, 'N').slice(0, 90);
              tally.add(`UNEXPLAINED: Chimera refuses, PIL decodes: ${kind}`, `${chimera.error.message} in ${example()}`);
            }
          }),
          { numRuns: RUNS, seed: 20251203, endOnFailure: true },
        );
      } finally {
        pil.close();
      }
      const seconds = (performance.now() - started) / 1000;
      console.log(tally.report(`JPEG fuzz: ${RUNS} cases in ${seconds.toFixed(1)} s, slowest decode ${slowest.ms.toFixed(1)} ms`));
      expect(tally.keys('MISREAD'), tally.report('misreads')).toEqual([]);
      expect(tally.keys('UNEXPLAINED'), tally.report('unexplained disagreements with PIL')).toEqual([]);
      expect(tally.get('agree: both decode')).toBeGreaterThan(RUNS * 0.15);
      expect(tally.total('agree: both refuse')).toBeGreaterThan(RUNS * 0.15);
      expect(tally.total('PIL lenient')).toBeGreaterThan(0);
    },
    fuzzTimeout(RUNS, 30),
  );
});
