/**
 * WAV files for the audio tests, written byte by byte from the RIFF/WAVE layout (independent of the reader):
 * PCM 8/16/24/32, float 32/64, optional WAVE_FORMAT_EXTENSIBLE, extra chunks before the data, odd-sized chunks.
 */

export interface WavSpec {
  /** Per channel, the stored values: integers for PCM (unsigned for 8-bit), floats for float. */
  channels: number[][];
  sampleRate: number;
  bits: 8 | 16 | 24 | 32 | 64;
  encoding: 'pcm' | 'float';
  extensible?: boolean;
  /** Extra chunks (id, bytes) written between "fmt " and "data". */
  extraChunks?: [string, Uint8Array][];
}

export function encodeWav(spec: WavSpec): Uint8Array {
  const nch = spec.channels.length;
  const frames = spec.channels[0]!.length;
  const bytesPer = spec.bits / 8;
  const data = new Uint8Array(frames * nch * bytesPer);
  const dv = new DataView(data.buffer);
  for (let i = 0; i < frames; i++) {
    for (let c = 0; c < nch; c++) {
      const v = spec.channels[c]![i]!;
      const at = (i * nch + c) * bytesPer;
      if (spec.encoding === 'float') {
        if (spec.bits === 32) dv.setFloat32(at, v, true);
        else dv.setFloat64(at, v, true);
      } else if (spec.bits === 8) dv.setUint8(at, v);
      else if (spec.bits === 16) dv.setInt16(at, v, true);
      else if (spec.bits === 24) {
        const u = v < 0 ? v + 2 ** 24 : v;
        dv.setUint8(at, u & 0xff);
        dv.setUint8(at + 1, (u >> 8) & 0xff);
        dv.setUint8(at + 2, (u >> 16) & 0xff);
      } else dv.setInt32(at, v, true);
    }
  }
  const code = spec.encoding === 'pcm' ? 1 : 3;
  const fmt = new Uint8Array(spec.extensible ? 40 : 16);
  const f = new DataView(fmt.buffer);
  f.setUint16(0, spec.extensible ? 0xfffe : code, true);
  f.setUint16(2, nch, true);
  f.setUint32(4, spec.sampleRate, true);
  f.setUint32(8, spec.sampleRate * nch * bytesPer, true);
  f.setUint16(12, nch * bytesPer, true);
  f.setUint16(14, spec.bits, true);
  if (spec.extensible) {
    f.setUint16(16, 22, true);
    f.setUint16(18, spec.bits, true);
    f.setUint32(20, nch === 2 ? 3 : 0, true);
    fmt.set([code, 0, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71], 24);
  }
  const chunks: [string, Uint8Array][] = [['fmt ', fmt], ...(spec.extraChunks ?? []), ['data', data]];
  const parts: Uint8Array[] = [];
  for (const [id, body] of chunks) {
    const head = new Uint8Array(8);
    head.set([...id].map((ch) => ch.charCodeAt(0)));
    new DataView(head.buffer).setUint32(4, body.length, true);
    parts.push(head, body);
    if (body.length & 1 && id !== 'data') parts.push(new Uint8Array(1));
  }
  const size = parts.reduce((n, p) => n + p.length, 4);
  const out = new Uint8Array(8 + size);
  out.set([0x52, 0x49, 0x46, 0x46]);
  new DataView(out.buffer).setUint32(4, size, true);
  out.set([0x57, 0x41, 0x56, 0x45], 8);
  let at = 12;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A small seeded generator (mulberry32), so fixtures and mutations are the same on every run. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Stored values of a test tone for a format (full-scale extremes included). */
export function toneValues(frames: number, bits: number, encoding: 'pcm' | 'float', phase = 0): number[] {
  return Array.from({ length: frames }, (_, i) => {
    const x = i === 0 ? -1 : i === 1 ? 1 : Math.sin(i * 0.37 + phase) * 0.9;
    if (encoding === 'float') return x;
    if (bits === 8) return Math.min(255, Math.round(x * 128 + 128));
    const full = 2 ** (bits - 1);
    return Math.max(-full, Math.min(full - 1, Math.round(x * full)));
  });
}
