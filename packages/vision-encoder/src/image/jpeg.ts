/**
 * JPEG decoding (ITU-T T.81: baseline, extended and progressive Huffman-coded, 8-bit, 1/3/4 components), written
 * to give the pixels libjpeg gives through PIL, which is what HF image processors see: the same integer IDCT
 * (the "islow" Loeffler-Ligtenberg-Moschytz algorithm, 13-bit constants, 2 extra bits in the first pass), the same
 * "fancy" triangular chroma upsampling, YCbCr tables and colour-space rules (JFIF and Adobe markers, component
 * ids), and PIL's CMYK conversion.
 *
 * Where libjpeg conceals damage with a warning (a scan that ends before its last block, an undecodable Huffman
 * code, a missing restart marker), this decoder refuses the file instead: concealed blocks are made-up pixels.
 * Coefficients no 8-bit encoder can produce (|value| > 2048 after dequantisation) are refused too; such
 * files are damaged, and their decoded pixels would depend on the decoder's overflow behaviour.
 *
 * Memory: sequential files are inverse-transformed block by block into one 8-bit plane per component;
 * progressive files also keep every coefficient (2 bytes a sample) until the last scan. `jpegDecodeCost` gives
 * the total from the frame header, so the budget is checked before anything is allocated.
 */
import { ImageInputError } from './errors';
import type { ImageHeader } from './header';
import type { RgbImage } from './types';

/** Zigzag position -> natural (row-major) index; 16 extra entries absorb run lengths past the end, as libjpeg's. */
const NATURAL = new Int32Array([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
  28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
  47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
]);

/** Largest |coefficient * quantiser| an 8-bit encoder can produce: the DCT of 8-bit samples stays within +-1024. */
const MAX_COEFFICIENT = 2048;

/**
 * A Huffman-coded JPEG must spend at least one bit per 8x8 block of each component (its DC code), so a file
 * holds at least pixels / 512 bytes; half of that is a safe floor that refuses a tiny file claiming a huge frame
 * before anything is allocated.
 */
const MIN_BYTES_PER_PIXEL = 1 / 1024;

interface FrameComponent {
  id: number;
  h: number;
  v: number;
  tq: number;
  /** Blocks that hold image samples (libjpeg's width_in_blocks / height_in_blocks). */
  bw: number;
  bh: number;
  /** Blocks including the MCU padding of interleaved scans. */
  bwMcu: number;
  bhMcu: number;
  /** Samples of the downsampled component (ceil(width * h / maxH)). */
  dsW: number;
  dsH: number;
  plane: Uint8Array;
  coefs: Int16Array | null;
  /** Quantisation table latched at the component's first scan (natural order). */
  quant: Int32Array | null;
  pred: number;
  /** Progressive: the precision (Al) each coefficient is known to, -1 before any scan codes it (libjpeg's coef_bits). */
  coefBits: Int8Array;
  dc: Huffman | null;
  ac: Huffman | null;
  scanned: boolean;
}

interface Frame {
  progressive: boolean;
  width: number;
  height: number;
  maxH: number;
  maxV: number;
  mcusX: number;
  mcusY: number;
  components: FrameComponent[];
}

interface HuffmanSpec {
  counts: Uint8Array; // [17], counts[l] = codes of length l
  values: Uint8Array;
}

interface Huffman {
  maxcode: Int32Array; // [18]
  valoffset: Int32Array; // [17]
  values: Uint8Array;
}

/** Working memory of a decode, by part, from the frame header's size and sampling (for decode.ts's budget). */
export function jpegDecodeCost(header: ImageHeader): { label: string; bytes: number }[] {
  const sampling = header.sampling ?? [];
  const maxH = Math.max(1, ...sampling.map((s) => s.h));
  const maxV = Math.max(1, ...sampling.map((s) => s.v));
  const mcusX = Math.ceil(header.width / (8 * maxH));
  const mcusY = Math.ceil(header.height / (8 * maxV));
  const planes = sampling.reduce((n, s) => n + mcusX * s.h * 8 * mcusY * s.v * 8, 0);
  const cost = [{ label: 'component planes', bytes: planes }];
  if (header.interlaced) cost.push({ label: 'progressive coefficients', bytes: 2 * planes });
  cost.push({ label: 'RGB output', bytes: header.width * header.height * 3 });
  cost.push({ label: 'row buffers', bytes: sampling.length * (2 * header.width + 16) });
  return cost;
}

/** Refuses, before any allocation, frame types this decoder lacks and files too small for their frame. */
export function checkJpegHeader(bytes: Uint8Array, header: ImageHeader, source: string): void {
  const { width, height, bitDepth, colorType } = header;
  if (colorType !== 0 && colorType !== 1 && colorType !== 2) {
    const kind = colorType === 3 || colorType === 7 || colorType === 11 || colorType === 15 ? 'lossless' : 'arithmetic-coded or hierarchical';
    throw new ImageInputError(
      'unsupported',
      `${source}: unsupported JPEG: ${kind} (SOF${colorType}); only baseline, extended and progressive Huffman ` +
        'JPEGs decode: re-encode the image',
      source,
    );
  }
  if (bitDepth !== 8) {
    throw new ImageInputError(
      'unsupported',
      `${source}: unsupported JPEG: ${bitDepth}-bit samples; only 8-bit JPEGs decode: re-encode the image`,
      source,
    );
  }
  const minBytes = Math.floor(width * height * MIN_BYTES_PER_PIXEL);
  if (bytes.length < minBytes) {
    throw corrupt(
      source,
      `${bytes.length} bytes cannot hold the ${width}x${height} image the header declares (at least ${minBytes} bytes)`,
    );
  }
}

/** Decodes a JPEG whose header was already read and checked against the caps and the memory budget. */
export function decodeJpeg(bytes: Uint8Array, source: string): RgbImage {
  return new JpegDecoder(bytes, source).decode();
}

class JpegDecoder {
  private pos = 2;
  private frame: Frame | null = null;
  private readonly quant: (Int32Array | null)[] = [null, null, null, null];
  private readonly dcSpecs: (HuffmanSpec | null)[] = [null, null, null, null];
  private readonly acSpecs: (HuffmanSpec | null)[] = [null, null, null, null];
  private restartInterval = 0;
  private jfif = false;
  private adobe: number | null = null;
  private scans = 0;
  /** The first scan held every component: libjpeg then decodes in one pass and expects no further scan. */
  private singleScan = false;
  private eobrun = 0;
  private readonly bits: BitReader;

  constructor(
    private readonly data: Uint8Array,
    private readonly source: string,
  ) {
    this.bits = new BitReader(data, source);
  }

  decode(): RgbImage {
    const d = this.data;
    if (d.length < 2 || d[0] !== 0xff || d[1] !== 0xd8) throw corrupt(this.source, 'no SOI marker at the start');
    for (;;) {
      const { marker, at } = this.nextMarker();
      if (marker === 0xd9) break; // EOI
      if (marker === 0xd8) throw corrupt(this.source, `a second SOI marker at byte ${at}`);
      if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) continue; // RSTn, TEM: no payload
      const length = this.segmentLength(marker, at);
      const body = this.pos + 2;
      const end = this.pos + length;
      switch (marker) {
        case 0xc0:
        case 0xc1:
        case 0xc2:
          this.readFrame(marker, body, end, at);
          break;
        case 0xc4:
          this.readHuffman(body, end, at);
          break;
        case 0xdb:
          this.readQuant(body, end, at);
          break;
        case 0xdd:
          if (length !== 4) throw corrupt(this.source, `the DRI segment at byte ${at} has length ${length}, not 4`);
          this.restartInterval = (d[body] << 8) | d[body + 1];
          break;
        case 0xda:
          this.pos = this.readScan(body, end, at);
          continue;
        case 0xe0:
          if (end - body >= 14 && d[body] === 0x4a && d[body + 1] === 0x46 && d[body + 2] === 0x49 && d[body + 3] === 0x46 && d[body + 4] === 0) {
            this.jfif = true;
          }
          break;
        case 0xee:
          if (end - body >= 12 && d[body] === 0x41 && d[body + 1] === 0x64 && d[body + 2] === 0x6f && d[body + 3] === 0x62 && d[body + 4] === 0x65) {
            this.adobe = d[body + 11];
          }
          break;
        case 0xcc: // DAC: arithmetic-coding conditioning, unused by Huffman scans
        case 0xdc: // DNL
        case 0xfe: // COM
          break;
        default:
          if (marker >= 0xe0 && marker <= 0xef) break; // other APPn
          if (marker >= 0xc0 && marker <= 0xcf) {
            throw new ImageInputError(
              'unsupported',
              `${this.source}: unsupported JPEG: frame type SOF${marker - 0xc0} at byte ${at} (lossless, hierarchical ` +
                'or arithmetic-coded); only baseline, extended and progressive Huffman JPEGs decode: re-encode the image',
              this.source,
            );
          }
          throw corrupt(this.source, `unknown marker 0xff${hex2(marker)} at byte ${at}`);
      }
      this.pos = end;
    }
    const frame = this.frame;
    if (!frame) throw corrupt(this.source, 'the end-of-image marker comes before any frame header (SOF)');
    if (this.scans === 0) throw corrupt(this.source, 'the file has no scan (SOS) before its end-of-image marker');
    const missing = frame.components.findIndex((c) => !c.scanned);
    if (missing >= 0) {
      throw corrupt(this.source, `component ${missing + 1} of ${frame.components.length} is never coded in any scan`);
    }
    if (frame.progressive) {
      // A progressive file must code every coefficient to full precision; libjpeg estimates missing ones by
      // smoothing across blocks, which is guessing. Encoders' scan scripts always complete.
      frame.components.forEach((c, i) => {
        const k = c.coefBits.findIndex((bits) => bits !== 0);
        if (k >= 0) {
          throw corrupt(
            this.source,
            `the progressive scans stop before coefficient ${k} of component ${i + 1} is complete ` +
              `(${c.coefBits[k] < 0 ? 'never coded' : `${c.coefBits[k]} bit(s) short`}); scans are missing`,
          );
        }
      });
      for (const c of frame.components) this.transformAll(c);
    }
    return this.output(frame);
  }

  /** A truncation error; says so when the one scan of a sequential image was already complete. */
  private truncated(at: number, what?: string): ImageInputError {
    const done = this.singleScan && this.frame !== null && !this.frame.progressive;
    return truncated(this.source, at, what, done ? ' (after the image data: every row had been decoded)' : '');
  }

  /** libjpeg's next_marker: after the first scan, bytes before a marker are skipped (they carry no data). */
  private nextMarker(): { marker: number; at: number } {
    const d = this.data;
    let p = this.pos;
    if (this.scans === 0) {
      // Before the first scan PIL's own header parser also reads the file; keep to well-formed marker sequences.
      if (p >= d.length) throw this.truncated(p);
      if (d[p] !== 0xff) throw corrupt(this.source, `expected a marker at byte ${p}, found 0x${hex2(d[p])}`);
    }
    for (;;) {
      while (p < d.length && d[p] !== 0xff) p++;
      while (p < d.length && d[p] === 0xff) p++;
      if (p >= d.length) throw this.truncated(p);
      if (d[p] !== 0) break;
      if (this.scans === 0) throw corrupt(this.source, `expected a marker at byte ${p - 1}, found 0xff00`);
      p++;
    }
    this.pos = p + 1;
    return { marker: d[p], at: p - 1 };
  }

  private segmentLength(marker: number, at: number): number {
    const d = this.data;
    if (this.pos + 2 > d.length) throw this.truncated(d.length);
    let length = (d[this.pos] << 8) | d[this.pos + 1];
    if (length < 2) {
      // APPn, COM and DNL are skipped by length; libjpeg and PIL both read a length below 2 as an empty segment.
      if ((marker >= 0xe0 && marker <= 0xef) || marker === 0xfe || marker === 0xdc) length = 2;
      else throw corrupt(this.source, `the segment 0xff${hex2(marker)} at byte ${at} has length ${length}`);
    }
    if (this.pos + length > d.length) {
      throw this.truncated(d.length, `the segment 0xff${hex2(marker)} at byte ${at} needs ${length} bytes`);
    }
    return length;
  }

  private readFrame(marker: number, p: number, end: number, at: number): void {
    const d = this.data;
    if (this.frame) throw corrupt(this.source, `a second frame header (SOF) at byte ${at}`);
    if (end - p < 6) throw corrupt(this.source, `the frame header at byte ${at} is ${end - p + 2} bytes, too short`);
    const precision = d[p];
    const height = (d[p + 1] << 8) | d[p + 2];
    const width = (d[p + 3] << 8) | d[p + 4];
    const count = d[p + 5];
    if (end - p !== 6 + 3 * count) {
      throw corrupt(this.source, `the frame header at byte ${at} is ${end - p + 2} bytes; ${count} components need ${8 + 3 * count}`);
    }
    if (precision !== 8) {
      throw new ImageInputError('unsupported', `${this.source}: unsupported JPEG: ${precision}-bit samples; only 8-bit JPEGs decode: re-encode the image`, this.source);
    }
    if (width === 0 || height === 0) {
      throw new ImageInputError('empty', `${this.source}: the JPEG frame is ${width}x${height}; zero-size (or height-by-DNL) JPEGs are not decoded`, this.source);
    }
    if (width > 65500 || height > 65500) {
      throw new ImageInputError(
        'unsupported',
        `${this.source}: unsupported JPEG: ${width}x${height}; sides above 65500 pixels are not decoded (libjpeg's limit too)`,
        this.source,
      );
    }
    if (count !== 1 && count !== 3 && count !== 4) {
      throw new ImageInputError(
        'unsupported',
        `${this.source}: unsupported JPEG: ${count} components; only gray (1), YCbCr/RGB (3) and CMYK/YCCK (4) decode: re-encode the image`,
        this.source,
      );
    }
    const components: FrameComponent[] = [];
    for (let i = 0; i < count; i++) {
      const id = d[p + 6 + 3 * i];
      const h = d[p + 7 + 3 * i] >> 4;
      const v = d[p + 7 + 3 * i] & 15;
      if (h < 1 || h > 4 || v < 1 || v > 4) {
        throw corrupt(this.source, `component ${i + 1} has sampling factors ${h}x${v}; each must be 1 to 4`);
      }
      components.push({ id, h, v, tq: d[p + 8 + 3 * i], bw: 0, bh: 0, bwMcu: 0, bhMcu: 0, dsW: 0, dsH: 0, plane: EMPTY, coefs: null, quant: null, pred: 0, coefBits: new Int8Array(64).fill(-1), dc: null, ac: null, scanned: false });
    }
    const maxH = Math.max(...components.map((c) => c.h));
    const maxV = Math.max(...components.map((c) => c.v));
    for (const c of components) {
      if (maxH % c.h !== 0 || maxV % c.v !== 0) {
        throw new ImageInputError(
          'unsupported',
          `${this.source}: unsupported JPEG: component sampling ${c.h}x${c.v} is not an integer fraction of ${maxH}x${maxV}; re-encode the image`,
          this.source,
        );
      }
    }
    const mcusX = Math.ceil(width / (8 * maxH));
    const mcusY = Math.ceil(height / (8 * maxV));
    const progressive = marker === 0xc2;
    // Allocation happens here, after decode.ts checked this frame's cost against the budget.
    for (const c of components) {
      c.dsW = Math.ceil((width * c.h) / maxH);
      c.dsH = Math.ceil((height * c.v) / maxV);
      c.bw = Math.ceil(c.dsW / 8);
      c.bh = Math.ceil(c.dsH / 8);
      c.bwMcu = mcusX * c.h;
      c.bhMcu = mcusY * c.v;
      c.plane = new Uint8Array(c.bwMcu * 8 * c.bhMcu * 8);
      if (progressive) c.coefs = new Int16Array(c.bwMcu * c.bhMcu * 64);
    }
    this.frame = { progressive, width, height, maxH, maxV, mcusX, mcusY, components };
  }

  private readHuffman(p: number, end: number, at: number): void {
    const d = this.data;
    while (end - p > 16) {
      const index = d[p];
      const counts = new Uint8Array(17);
      let total = 0;
      for (let l = 1; l <= 16; l++) {
        counts[l] = d[p + l];
        total += counts[l];
      }
      p += 17;
      if (total > 256 || total > end - p) {
        throw corrupt(this.source, `the Huffman table segment at byte ${at} lists ${total} codes, more than it holds`);
      }
      const values = d.slice(p, p + total);
      p += total;
      const table = index & 0x0f;
      if ((index & 0xe0) !== 0 || table > 3) throw corrupt(this.source, `Huffman table id 0x${hex2(index)} at byte ${at} does not exist`);
      (index & 0x10 ? this.acSpecs : this.dcSpecs)[table] = { counts, values };
    }
    if (p !== end) throw corrupt(this.source, `the Huffman table segment at byte ${at} has ${end - p} bytes left over`);
  }

  private readQuant(p: number, end: number, at: number): void {
    const d = this.data;
    while (p < end) {
      const wide = d[p] >> 4 !== 0;
      const table = d[p] & 15;
      if (table > 3) throw corrupt(this.source, `quantisation table id ${table} at byte ${at} does not exist (0-3 do)`);
      const size = wide ? 128 : 64;
      if (end - p - 1 < size) throw corrupt(this.source, `the quantisation table segment at byte ${at} is cut short`);
      const q = new Int32Array(64);
      for (let i = 0; i < 64; i++) q[NATURAL[i]] = wide ? (d[p + 1 + 2 * i] << 8) | d[p + 2 + 2 * i] : d[p + 1 + i];
      this.quant[table] = q;
      p += 1 + size;
    }
  }

  private readScan(p: number, end: number, at: number): number {
    const d = this.data;
    const frame = this.frame;
    if (!frame) throw corrupt(this.source, `a scan (SOS) at byte ${at} before any frame header (SOF)`);
    const count = d[p];
    if (count < 1 || count > 4 || end - p !== 4 + 2 * count) {
      throw corrupt(this.source, `the scan header at byte ${at} is ${end - p + 2} bytes for ${count} components`);
    }
    if (this.scans === 0 && !frame.progressive) {
      for (const t of STANDARD_TABLES) {
        const slots = t.dc ? this.dcSpecs : this.acSpecs;
        if (!slots[t.table]) slots[t.table] = { counts: new Uint8Array([0, ...t.counts]), values: new Uint8Array(t.values) };
      }
    }
    if (this.scans > 0 && !frame.progressive && this.singleScan) {
      throw corrupt(this.source, `a second scan at byte ${at} after a scan that held every component; expected the end-of-image marker`);
    }
    const comps: FrameComponent[] = [];
    const tables: number[] = [];
    for (let i = 0; i < count; i++) {
      const id = d[p + 1 + 2 * i];
      const c = frame.components.find((fc) => fc.id === id);
      if (!c) throw corrupt(this.source, `the scan at byte ${at} names component id ${id}, which the frame does not have`);
      if (comps.includes(c)) throw corrupt(this.source, `the scan at byte ${at} names component id ${id} twice`);
      comps.push(c);
      tables.push(d[p + 2 + 2 * i]);
    }
    const ss = d[end - 3];
    const se = d[end - 2];
    const ah = d[end - 1] >> 4;
    const al = d[end - 1] & 15;
    let blocksPerMcu = 0;
    for (const c of comps) blocksPerMcu += c.h * c.v;
    if (count > 1 && blocksPerMcu > 10) {
      throw corrupt(this.source, `the scan at byte ${at} interleaves ${blocksPerMcu} blocks per MCU (at most 10 are allowed)`);
    }
    if (frame.progressive) {
      const bad = ss === 0 ? se !== 0 : ss > se || se > 63 || count !== 1;
      if (bad || (ah !== 0 && al !== ah - 1) || al > 13) {
        throw corrupt(this.source, `the progressive scan at byte ${at} has an invalid band (Ss=${ss}, Se=${se}, Ah=${ah}, Al=${al})`);
      }
    }
    comps.forEach((c, i) => {
      if (!c.quant) {
        const q = this.quant[c.tq & 3];
        if (c.tq > 3 || !q) throw corrupt(this.source, `component id ${c.id} uses quantisation table ${c.tq}, which is not defined`);
        c.quant = q.slice(); // latched: later DQT segments apply to later components only, as in libjpeg
      }
      const needDc = !frame.progressive || (ss === 0 && ah === 0);
      const needAc = !frame.progressive || ss !== 0;
      c.dc = needDc ? this.huffman(true, tables[i] >> 4, at) : null;
      c.ac = needAc ? this.huffman(false, tables[i] & 15, at) : null;
      c.pred = 0;
      c.scanned = true;
      if (frame.progressive) c.coefBits.fill(al, ss, (ss === 0 ? 0 : se) + 1);
    });
    if (this.scans === 0) this.singleScan = count === frame.components.length;
    this.scans++;
    this.eobrun = 0;
    const bits = this.bits;
    bits.start(end, this.scans);
    const single = count === 1;
    const total = single ? comps[0].bw * comps[0].bh : frame.mcusX * frame.mcusY;
    const decodeBlock = this.blockDecoder(frame, ss, se, ah, al);
    let restartsToGo = this.restartInterval;
    let nextRestart = 0;
    for (let m = 0; m < total; m++) {
      if (this.restartInterval) {
        if (restartsToGo === 0) {
          bits.restart(nextRestart);
          nextRestart = (nextRestart + 1) & 7;
          for (const c of comps) c.pred = 0;
          this.eobrun = 0;
          restartsToGo = this.restartInterval;
        }
        restartsToGo--;
      }
      if (single) {
        const c = comps[0];
        decodeBlock(c, (m / c.bw) | 0, m % c.bw);
      } else {
        const row = (m / frame.mcusX) | 0;
        const col = m % frame.mcusX;
        for (const c of comps) {
          for (let v = 0; v < c.v; v++) for (let h = 0; h < c.h; h++) decodeBlock(c, row * c.v + v, col * c.h + h);
        }
      }
    }
    return bits.position();
  }

  private huffman(dc: boolean, table: number, at: number): Huffman {
    const spec = table < 4 ? (dc ? this.dcSpecs : this.acSpecs)[table] : null;
    if (!spec) throw corrupt(this.source, `the scan at byte ${at} uses ${dc ? 'DC' : 'AC'} Huffman table ${table}, which is not defined`);
    return deriveHuffman(spec, dc, () => corrupt(this.source, `${dc ? 'DC' : 'AC'} Huffman table ${table} is invalid (over-subscribed codes${dc ? ' or a DC size above 15' : ''})`));
  }

  /** The per-block decoder of this scan's kind; sequential blocks go through the IDCT at once. */
  private blockDecoder(frame: Frame, ss: number, se: number, ah: number, al: number): (c: FrameComponent, row: number, col: number) => void {
    const bits = this.bits;
    const block = new Int16Array(64);
    const ws = new Float64Array(64);
    if (!frame.progressive) {
      return (c, row, col) => {
        block.fill(0);
        const s = decodeSymbol(bits, c.dc!);
        c.pred += s ? extend(bits.read(s), s) : 0;
        block[0] = c.pred;
        for (let k = 1; k < 64; k++) {
          const rs = decodeSymbol(bits, c.ac!);
          const r = rs >> 4;
          const size = rs & 15;
          if (size) {
            k += r;
            block[NATURAL[k]] = extend(bits.read(size), size);
          } else {
            if (r !== 15) break;
            k += 15;
          }
        }
        this.transform(c, block, 0, row, col, ws);
      };
    }
    const p1 = 1 << al;
    const m1 = -1 << al;
    if (ss === 0) {
      if (ah === 0) {
        return (c, row, col) => {
          const s = decodeSymbol(bits, c.dc!);
          c.pred += s ? extend(bits.read(s), s) : 0;
          c.coefs![(row * c.bwMcu + col) * 64] = c.pred * p1;
        };
      }
      return (c, row, col) => {
        if (bits.bit()) c.coefs![(row * c.bwMcu + col) * 64] |= p1;
      };
    }
    if (ah === 0) {
      return (c, row, col) => {
        if (this.eobrun > 0) {
          this.eobrun--;
          return;
        }
        const coefs = c.coefs!;
        const base = (row * c.bwMcu + col) * 64;
        for (let k = ss; k <= se; k++) {
          const rs = decodeSymbol(bits, c.ac!);
          const r = rs >> 4;
          const s = rs & 15;
          if (s) {
            k += r;
            coefs[base + NATURAL[k]] = extend(bits.read(s), s) * p1;
          } else if (r === 15) {
            k += 15;
          } else {
            this.eobrun = (1 << r) - 1;
            if (r) this.eobrun += bits.read(r);
            break;
          }
        }
      };
    }
    return (c, row, col) => {
      const coefs = c.coefs!;
      const base = (row * c.bwMcu + col) * 64;
      let k = ss;
      // Appends a correction bit to an already non-zero coefficient.
      const refine = (i: number) => {
        if (bits.bit() && (coefs[i] & p1) === 0) coefs[i] += coefs[i] >= 0 ? p1 : m1;
      };
      if (this.eobrun === 0) {
        for (; k <= se; k++) {
          const rs = decodeSymbol(bits, c.ac!);
          let r = rs >> 4;
          let s = rs & 15;
          if (s) {
            // A size other than 1 is invalid here; libjpeg treats it as 1 (with a warning), so do the same.
            s = bits.bit() ? p1 : m1;
          } else if (r !== 15) {
            this.eobrun = 1 << r;
            if (r) this.eobrun += bits.read(r);
            break;
          }
          do {
            const i = base + NATURAL[k];
            if (coefs[i] !== 0) refine(i);
            else if (--r < 0) break;
            k++;
          } while (k <= se);
          if (s) coefs[base + NATURAL[k]] = s;
        }
      }
      if (this.eobrun > 0) {
        for (; k <= se; k++) {
          const i = base + NATURAL[k];
          if (coefs[i] !== 0) refine(i);
        }
        this.eobrun--;
      }
    };
  }

  private transformAll(c: FrameComponent): void {
    const ws = new Float64Array(64);
    for (let row = 0; row < c.bh; row++) {
      for (let col = 0; col < c.bw; col++) this.transform(c, c.coefs!, (row * c.bwMcu + col) * 64, row, col, ws);
    }
    c.coefs = null;
  }

  private transform(c: FrameComponent, coefs: Int16Array, offset: number, row: number, col: number, ws: Float64Array): void {
    const stride = c.bwMcu * 8;
    const bad = idctIslow(coefs, offset, c.quant!, c.plane, row * 8 * stride + col * 8, stride, ws);
    if (bad >= 0) {
      throw corrupt(
        this.source,
        `coefficient ${bad} of block (${col}, ${row}) of component id ${c.id} is ${coefs[offset + bad] * c.quant![bad]} ` +
          `after dequantisation; an 8-bit JPEG's lie within +-${MAX_COEFFICIENT}`,
      );
    }
  }

  /** Upsampling and colour conversion, one output row at a time, into 8-bit RGB. */
  private output(frame: Frame): RgbImage {
    const { width, height, components } = frame;
    const out = new Uint8Array(width * height * 3);
    const rows = components.map((c) => new Uint8Array(Math.max(width, 2 * c.dsW) + 16));
    const samplers = components.map((c) => rowSampler(c, frame));
    const space = colourSpace(components, this.jfif, this.adobe);
    for (let y = 0; y < height; y++) {
      for (let i = 0; i < components.length; i++) samplers[i](y, rows[i]);
      convertRow(space, rows, width, out, y * width * 3);
    }
    return { data: out, width, height };
  }
}

const EMPTY = new Uint8Array(0);

/**
 * The example tables of T.81 Annex K.3 (what most encoders write). libjpeg substitutes them for DC/AC tables 0
 * and 1 when a sequential file defines none before its first scan (Motion-JPEG frames omit them), so this does too.
 */
const STANDARD_TABLES: { dc: boolean; table: number; counts: number[]; values: number[] }[] = [
  { dc: true, table: 0, counts: [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], values: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] },
  { dc: true, table: 1, counts: [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], values: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] },
  {
    dc: false,
    table: 0,
    counts: [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 125],
    values: [
      1, 2, 3, 0, 4, 17, 5, 18, 33, 49, 65, 6, 19, 81, 97, 7, 34, 113, 20, 50, 129, 145, 161, 8, 35, 66, 177, 193, 21, 82,
      209, 240, 36, 51, 98, 114, 130, 9, 10, 22, 23, 24, 25, 26, 37, 38, 39, 40, 41, 42, 52, 53, 54, 55, 56, 57, 58, 67,
      68, 69, 70, 71, 72, 73, 74, 83, 84, 85, 86, 87, 88, 89, 90, 99, 100, 101, 102, 103, 104, 105, 106, 115, 116, 117,
      118, 119, 120, 121, 122, 131, 132, 133, 134, 135, 136, 137, 138, 146, 147, 148, 149, 150, 151, 152, 153, 154, 162,
      163, 164, 165, 166, 167, 168, 169, 170, 178, 179, 180, 181, 182, 183, 184, 185, 186, 194, 195, 196, 197, 198, 199,
      200, 201, 202, 210, 211, 212, 213, 214, 215, 216, 217, 218, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 241,
      242, 243, 244, 245, 246, 247, 248, 249, 250,
    ],
  },
  {
    dc: false,
    table: 1,
    counts: [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 119],
    values: [
      0, 1, 2, 3, 17, 4, 5, 33, 49, 6, 18, 65, 81, 7, 97, 113, 19, 34, 50, 129, 8, 20, 66, 145, 161, 177, 193, 9, 35, 51,
      82, 240, 21, 98, 114, 209, 10, 22, 36, 52, 225, 37, 241, 23, 24, 25, 26, 38, 39, 40, 41, 42, 53, 54, 55, 56, 57, 58,
      67, 68, 69, 70, 71, 72, 73, 74, 83, 84, 85, 86, 87, 88, 89, 90, 99, 100, 101, 102, 103, 104, 105, 106, 115, 116,
      117, 118, 119, 120, 121, 122, 130, 131, 132, 133, 134, 135, 136, 137, 138, 146, 147, 148, 149, 150, 151, 152, 153,
      154, 162, 163, 164, 165, 166, 167, 168, 169, 170, 178, 179, 180, 181, 182, 183, 184, 185, 186, 194, 195, 196, 197,
      198, 199, 200, 201, 202, 210, 211, 212, 213, 214, 215, 216, 217, 218, 226, 227, 228, 229, 230, 231, 232, 233, 234,
      242, 243, 244, 245, 246, 247, 248, 249, 250,
    ],
  },
];

/** Reads the entropy-coded bytes of one scan: removes stuffed zero bytes and stops at markers. */
class BitReader {
  private p = 0;
  private buf = 0;
  private n = 0;
  private scan = 0;

  constructor(
    private readonly d: Uint8Array,
    private readonly source: string,
  ) {}

  start(p: number, scan: number): void {
    this.p = p;
    this.n = 0;
    this.scan = scan;
  }

  position(): number {
    return this.p;
  }

  bit(): number {
    if (this.n === 0) this.fill();
    this.n--;
    return (this.buf >> this.n) & 1;
  }

  read(count: number): number {
    let v = 0;
    for (let i = 0; i < count; i++) v = (v << 1) | this.bit();
    return v;
  }

  private fill(): void {
    const d = this.d;
    if (this.p >= d.length) throw truncated(this.source, d.length, `scan ${this.scan} needs more data`);
    let c = d[this.p];
    if (c === 0xff) {
      let q = this.p + 1;
      while (q < d.length && d[q] === 0xff) q++;
      if (q >= d.length) throw truncated(this.source, d.length, `scan ${this.scan} needs more data`);
      if (d[q] !== 0) {
        throw corrupt(
          this.source,
          `the data of scan ${this.scan} ends at marker 0xff${hex2(d[q])} (byte ${q - 1}) before its last block; ` +
            'bytes are missing from the scan',
        );
      }
      this.p = q + 1;
    } else {
      this.p++;
    }
    this.buf = c;
    this.n = 8;
  }

  /** The error for 17 bits that match no code of the scan's Huffman table. */
  invalidCode(): ImageInputError {
    return corrupt(this.source, `scan ${this.scan} holds a bit sequence at byte ${this.p - 1} that is no code of its Huffman table`);
  }

  /** Between restart intervals: drops the partial byte and expects marker RSTn (bytes before it carry no data). */
  restart(expected: number): void {
    const d = this.d;
    this.n = 0;
    let p = this.p;
    for (;;) {
      while (p < d.length && d[p] !== 0xff) p++;
      while (p < d.length && d[p] === 0xff) p++;
      if (p >= d.length) throw truncated(this.source, d.length, `scan ${this.scan} needs more data`);
      if (d[p] !== 0) break;
      p++;
    }
    if (d[p] !== 0xd0 + expected) {
      throw corrupt(
        this.source,
        `scan ${this.scan} expects restart marker RST${expected} at byte ${p - 1} but finds 0xff${hex2(d[p])}; ` +
          'restart intervals are missing or out of order',
      );
    }
    this.p = p + 1;
  }
}

function deriveHuffman(spec: HuffmanSpec, dc: boolean, bad: () => Error): Huffman {
  const sizes: number[] = [];
  for (let l = 1; l <= 16; l++) for (let i = 0; i < spec.counts[l]; i++) sizes.push(l);
  // Canonical codes; a length whose codes overflow it (or an all-ones code) makes the table invalid, as in libjpeg.
  const codes: number[] = [];
  let code = 0;
  let si = sizes.length ? sizes[0] : 0;
  let p = 0;
  while (p < sizes.length) {
    while (p < sizes.length && sizes[p] === si) {
      codes[p++] = code++;
    }
    if (code >= 1 << si) throw bad();
    code <<= 1;
    si++;
  }
  const maxcode = new Int32Array(18).fill(-1);
  const valoffset = new Int32Array(17);
  p = 0;
  for (let l = 1; l <= 16; l++) {
    if (spec.counts[l]) {
      valoffset[l] = p - codes[p];
      p += spec.counts[l];
      maxcode[l] = codes[p - 1];
    }
  }
  maxcode[17] = 0xfffff;
  if (dc && spec.values.some((v) => v > 15)) throw bad();
  return { maxcode, valoffset, values: spec.values };
}

function decodeSymbol(bits: BitReader, table: Huffman): number {
  let code = bits.bit();
  let l = 1;
  while (code > table.maxcode[l]) {
    code = (code << 1) | bits.bit();
    l++;
  }
  if (l > 16) throw bits.invalidCode();
  return table.values[table.valoffset[l] + code];
}

function extend(v: number, size: number): number {
  return v < 1 << (size - 1) ? v - (1 << size) + 1 : v;
}

// islow IDCT constants: round(x * 2^13).
const F_0_298 = 2446;
const F_0_390 = 3196;
const F_0_541 = 4433;
const F_0_765 = 6270;
const F_0_899 = 7373;
const F_1_175 = 9633;
const F_1_501 = 12299;
const F_1_847 = 15137;
const F_1_961 = 16069;
const F_2_053 = 16819;
const F_2_562 = 20995;
const F_3_072 = 25172;

/**
 * The islow inverse DCT of one block into 8 rows of `out`: columns first, scaled up by 2^2, then rows, descaled
 * by 2^18 with rounding, level-shifted by 128 and clamped. Returns the index of an out-of-range coefficient, or -1.
 */
function idctIslow(coefs: Int16Array, offset: number, q: Int32Array, out: Uint8Array, o: number, stride: number, ws: Float64Array): number {
  for (let i = 0; i < 64; i++) {
    const v = coefs[offset + i] * q[i];
    if (v > MAX_COEFFICIENT || v < -MAX_COEFFICIENT) return i;
    ws[i] = v;
  }
  // Pass 1: columns. Values stay far inside 2^31 given the coefficient bound, so 32-bit shifts are exact.
  for (let c = 0; c < 8; c++) {
    const d0 = ws[c];
    const d1 = ws[8 + c];
    const d2 = ws[16 + c];
    const d3 = ws[24 + c];
    const d4 = ws[32 + c];
    const d5 = ws[40 + c];
    const d6 = ws[48 + c];
    const d7 = ws[56 + c];
    if (d1 === 0 && d2 === 0 && d3 === 0 && d4 === 0 && d5 === 0 && d6 === 0 && d7 === 0) {
      const dc = d0 * 4;
      for (let r = 0; r < 8; r++) ws[r * 8 + c] = dc;
      continue;
    }
    let z1 = (d2 + d6) * F_0_541;
    let tmp2 = z1 - d6 * F_1_847;
    let tmp3 = z1 + d2 * F_0_765;
    let tmp0 = (d0 + d4) * 8192;
    let tmp1 = (d0 - d4) * 8192;
    const tmp10 = tmp0 + tmp3;
    const tmp13 = tmp0 - tmp3;
    const tmp11 = tmp1 + tmp2;
    const tmp12 = tmp1 - tmp2;
    tmp0 = d7;
    tmp1 = d5;
    tmp2 = d3;
    tmp3 = d1;
    z1 = tmp0 + tmp3;
    let z2 = tmp1 + tmp2;
    let z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * F_1_175;
    tmp0 *= F_0_298;
    tmp1 *= F_2_053;
    tmp2 *= F_3_072;
    tmp3 *= F_1_501;
    z1 *= -F_0_899;
    z2 *= -F_2_562;
    z3 = z3 * -F_1_961 + z5;
    z4 = z4 * -F_0_390 + z5;
    tmp0 += z1 + z3;
    tmp1 += z2 + z4;
    tmp2 += z2 + z3;
    tmp3 += z1 + z4;
    ws[c] = (tmp10 + tmp3 + 1024) >> 11;
    ws[56 + c] = (tmp10 - tmp3 + 1024) >> 11;
    ws[8 + c] = (tmp11 + tmp2 + 1024) >> 11;
    ws[48 + c] = (tmp11 - tmp2 + 1024) >> 11;
    ws[16 + c] = (tmp12 + tmp1 + 1024) >> 11;
    ws[40 + c] = (tmp12 - tmp1 + 1024) >> 11;
    ws[24 + c] = (tmp13 + tmp0 + 1024) >> 11;
    ws[32 + c] = (tmp13 - tmp0 + 1024) >> 11;
  }
  // Pass 2: rows. Sums can pass 2^31 here, so descale with a floored division (exact for these magnitudes).
  const SCALE = 1 / 262144; // 2^-18
  for (let r = 0; r < 8; r++) {
    const w = r * 8;
    let tmp0 = ws[w];
    let tmp1 = ws[w + 1];
    let tmp2 = ws[w + 2];
    let tmp3 = ws[w + 3];
    const d4 = ws[w + 4];
    const d5 = ws[w + 5];
    const d6 = ws[w + 6];
    const d7 = ws[w + 7];
    const dst = o + r * stride;
    if (tmp1 === 0 && tmp2 === 0 && tmp3 === 0 && d4 === 0 && d5 === 0 && d6 === 0 && d7 === 0) {
      const v = clamp(Math.floor((tmp0 + 16) / 32) + 128);
      for (let c = 0; c < 8; c++) out[dst + c] = v;
      continue;
    }
    const d0 = tmp0;
    const d1 = tmp1;
    const d2 = tmp2;
    const d3 = tmp3;
    let z1 = (d2 + d6) * F_0_541;
    tmp2 = z1 - d6 * F_1_847;
    tmp3 = z1 + d2 * F_0_765;
    tmp0 = (d0 + d4) * 8192;
    tmp1 = (d0 - d4) * 8192;
    const tmp10 = tmp0 + tmp3;
    const tmp13 = tmp0 - tmp3;
    const tmp11 = tmp1 + tmp2;
    const tmp12 = tmp1 - tmp2;
    tmp0 = d7;
    tmp1 = d5;
    tmp2 = d3;
    tmp3 = d1;
    z1 = tmp0 + tmp3;
    let z2 = tmp1 + tmp2;
    let z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * F_1_175;
    tmp0 *= F_0_298;
    tmp1 *= F_2_053;
    tmp2 *= F_3_072;
    tmp3 *= F_1_501;
    z1 *= -F_0_899;
    z2 *= -F_2_562;
    z3 = z3 * -F_1_961 + z5;
    z4 = z4 * -F_0_390 + z5;
    tmp0 += z1 + z3;
    tmp1 += z2 + z4;
    tmp2 += z2 + z3;
    tmp3 += z1 + z4;
    const half = 131072; // 2^17
    out[dst] = clamp(Math.floor((tmp10 + tmp3 + half) * SCALE) + 128);
    out[dst + 7] = clamp(Math.floor((tmp10 - tmp3 + half) * SCALE) + 128);
    out[dst + 1] = clamp(Math.floor((tmp11 + tmp2 + half) * SCALE) + 128);
    out[dst + 6] = clamp(Math.floor((tmp11 - tmp2 + half) * SCALE) + 128);
    out[dst + 2] = clamp(Math.floor((tmp12 + tmp1 + half) * SCALE) + 128);
    out[dst + 5] = clamp(Math.floor((tmp12 - tmp1 + half) * SCALE) + 128);
    out[dst + 3] = clamp(Math.floor((tmp13 + tmp0 + half) * SCALE) + 128);
    out[dst + 4] = clamp(Math.floor((tmp13 - tmp0 + half) * SCALE) + 128);
  }
  return -1;
}

function clamp(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * A function filling `row` with output row `y` of a component at full resolution: libjpeg's upsamplers. 2x
 * horizontal and 2x2 use the triangular "fancy" filter when the component is wider than 2 samples; 1x2 always;
 * other integer ratios replicate. Rows above the first and below the last repeat the edge row.
 */
function rowSampler(c: FrameComponent, frame: Frame): (y: number, row: Uint8Array) => void {
  const hr = frame.maxH / c.h;
  const vr = frame.maxV / c.v;
  const stride = c.bwMcu * 8;
  const plane = c.plane;
  const n = c.dsW;
  const lastRow = c.dsH - 1;
  if (hr === 1 && vr === 1) {
    return (y, row) => row.set(plane.subarray(y * stride, y * stride + n));
  }
  if (hr === 2 && vr === 1 && n > 2) {
    return (y, row) => {
      const s = y * stride;
      let v = plane[s];
      row[0] = v;
      row[1] = (v * 3 + plane[s + 1] + 2) >> 2;
      for (let i = 1; i < n - 1; i++) {
        v = plane[s + i] * 3;
        row[2 * i] = (v + plane[s + i - 1] + 1) >> 2;
        row[2 * i + 1] = (v + plane[s + i + 1] + 2) >> 2;
      }
      v = plane[s + n - 1];
      row[2 * n - 2] = (v * 3 + plane[s + n - 2] + 1) >> 2;
      row[2 * n - 1] = v;
    };
  }
  if (hr === 1 && vr === 2) {
    return (y, row) => {
      const iy = y >> 1;
      const near = iy * stride;
      const far = (y & 1 ? Math.min(iy + 1, lastRow) : Math.max(iy - 1, 0)) * stride;
      const bias = y & 1 ? 2 : 1;
      for (let i = 0; i < n; i++) row[i] = (plane[near + i] * 3 + plane[far + i] + bias) >> 2;
    };
  }
  if (hr === 2 && vr === 2 && n > 2) {
    return (y, row) => {
      const iy = y >> 1;
      const near = iy * stride;
      const far = (y & 1 ? Math.min(iy + 1, lastRow) : Math.max(iy - 1, 0)) * stride;
      let thisSum = plane[near] * 3 + plane[far];
      let nextSum = plane[near + 1] * 3 + plane[far + 1];
      row[0] = (thisSum * 4 + 8) >> 4;
      row[1] = (thisSum * 3 + nextSum + 7) >> 4;
      let lastSum = thisSum;
      thisSum = nextSum;
      for (let i = 1; i < n - 1; i++) {
        nextSum = plane[near + i + 1] * 3 + plane[far + i + 1];
        row[2 * i] = (thisSum * 3 + lastSum + 8) >> 4;
        row[2 * i + 1] = (thisSum * 3 + nextSum + 7) >> 4;
        lastSum = thisSum;
        thisSum = nextSum;
      }
      row[2 * n - 2] = (thisSum * 3 + lastSum + 8) >> 4;
      row[2 * n - 1] = (thisSum * 4 + 7) >> 4;
    };
  }
  return (y, row) => {
    const s = Math.floor(y / vr) * stride;
    for (let x = 0, i = 0; i < n; i++) for (let k = 0; k < hr; k++) row[x++] = plane[s + i];
  };
}

type ColourSpace = 'gray' | 'ycc' | 'rgb' | 'cmyk' | 'ycck';

/** libjpeg's rules: JFIF means YCbCr; an Adobe marker's transform flag decides; else component ids 'R','G','B'. */
function colourSpace(components: FrameComponent[], jfif: boolean, adobe: number | null): ColourSpace {
  if (components.length === 1) return 'gray';
  if (components.length === 4) return adobe === null || adobe === 0 ? 'cmyk' : 'ycck';
  if (jfif) return 'ycc';
  if (adobe !== null) return adobe === 0 ? 'rgb' : 'ycc';
  const [a, b, c] = components.map((x) => x.id);
  return a === 82 && b === 71 && c === 66 ? 'rgb' : 'ycc';
}

// libjpeg's YCbCr -> RGB tables: 16-bit fixed point, rounded.
const CR_R = new Int32Array(256);
const CB_B = new Int32Array(256);
const CR_G = new Int32Array(256);
const CB_G = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  const x = i - 128;
  CR_R[i] = (Math.round(1.402 * 65536) * x + 32768) >> 16;
  CB_B[i] = (Math.round(1.772 * 65536) * x + 32768) >> 16;
  CR_G[i] = -Math.round(0.71414 * 65536) * x;
  CB_G[i] = -Math.round(0.34414 * 65536) * x + 32768;
}

function convertRow(space: ColourSpace, rows: Uint8Array[], width: number, out: Uint8Array, o: number): void {
  const [c0, c1, c2, c3] = rows;
  switch (space) {
    case 'gray':
      for (let x = 0; x < width; x++, o += 3) out[o] = out[o + 1] = out[o + 2] = c0[x];
      return;
    case 'rgb':
      for (let x = 0; x < width; x++, o += 3) {
        out[o] = c0[x];
        out[o + 1] = c1[x];
        out[o + 2] = c2[x];
      }
      return;
    case 'ycc':
      for (let x = 0; x < width; x++, o += 3) {
        const y = c0[x];
        const cb = c1[x];
        const cr = c2[x];
        out[o] = clamp(y + CR_R[cr]);
        out[o + 1] = clamp(y + ((CB_G[cb] + CR_G[cr]) >> 16));
        out[o + 2] = clamp(y + CB_B[cb]);
      }
      return;
    default:
      // libjpeg hands PIL CMYK (YCCK converted: C, M, Y = 255 - R, G, B of the YCC part); PIL reads it inverted
      // ("Adobe" CMYK) and converts with r = k' - k' * c / 255 in its own rounding.
      for (let x = 0; x < width; x++, o += 3) {
        let a = c0[x];
        let b = c1[x];
        let c = c2[x];
        if (space === 'ycck') {
          const [y, cb, cr] = [a, b, c];
          a = clamp(255 - (y + CR_R[cr]));
          b = clamp(255 - (y + ((CB_G[cb] + CR_G[cr]) >> 16)));
          c = clamp(255 - (y + CB_B[cb]));
        }
        const nk = c3[x];
        out[o] = nk - mulDiv255(255 - a, nk);
        out[o + 1] = nk - mulDiv255(255 - b, nk);
        out[o + 2] = nk - mulDiv255(255 - c, nk);
      }
  }
}

/** PIL's MULDIV255: a * b / 255 rounded, in integers. */
function mulDiv255(a: number, b: number): number {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

function corrupt(source: string, what: string): ImageInputError {
  return new ImageInputError('corrupt', `${source}: corrupt JPEG: ${what}; the file is damaged`, source);
}

function truncated(source: string, at: number, what = 'the data stops', note = ''): ImageInputError {
  return new ImageInputError(
    'corrupt',
    `${source}: corrupt JPEG: ${what}, but the file ends at byte ${at} before the end-of-image marker${note}; the file is truncated`,
    source,
  );
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}
