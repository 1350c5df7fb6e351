// Test-only oracles for the weights tests, written independently of src/weights: a by-hand safetensors
// encoder, per-dtype reference decoders (bit manipulation / BigInt, not the library's tables), and brute-force
// nearest-value rounding for F16 / BF16.

export const ELEMENT_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8,
};

export interface RawEntry {
  name: string;
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** Encodes entries in the given order with no padding. */
export function buildSafetensors(entries: RawEntry[], metadata?: Record<string, unknown>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const e of entries) {
    Object.defineProperty(header, e.name, {
      value: { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.byteLength] },
      enumerable: true,
    });
    offset += e.bytes.byteLength;
  }
  return assemble(new TextEncoder().encode(JSON.stringify(header)), concat(entries.map((e) => e.bytes)));
}

export function assemble(headerBytes: Uint8Array, data: Uint8Array, lengthField = BigInt(headerBytes.byteLength)): Uint8Array {
  const out = new Uint8Array(8 + headerBytes.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, lengthField, true);
  out.set(headerBytes, 8);
  out.set(data, 8 + headerBytes.byteLength);
  return out;
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** binary16 bits -> float32 bits -> value, by re-biasing the exponent (no formula shared with the library). */
export function referenceF16(bits: number): number {
  const sign = (bits & 0x8000) << 16;
  let exponent = (bits >> 10) & 0x1f;
  let mantissa = bits & 0x3ff;
  let f32: number;
  if (exponent === 0x1f) f32 = sign | 0x7f800000 | (mantissa << 13);
  else if (exponent === 0) {
    if (mantissa === 0) f32 = sign;
    else {
      // Normalize the subnormal: shift until the implicit bit appears.
      exponent = 1;
      while ((mantissa & 0x400) === 0) {
        mantissa <<= 1;
        exponent--;
      }
      f32 = sign | ((exponent + 112) << 23) | ((mantissa & 0x3ff) << 13);
    }
  } else f32 = sign | ((exponent + 112) << 23) | (mantissa << 13);
  const view = new DataView(new ArrayBuffer(4));
  view.setUint32(0, f32 >>> 0);
  return view.getFloat32(0);
}

export function referenceBf16(bits: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setUint16(0, bits);
  return view.getFloat32(0);
}

function referenceF8E4M3(bits: number): number {
  const exponent = (bits >> 3) & 0xf;
  const mantissa = bits & 7;
  if (exponent === 15 && mantissa === 7) return NaN;
  const magnitude = exponent === 0 ? (mantissa / 8) * 2 ** -6 : (1 + mantissa / 8) * 2 ** (exponent - 7);
  return bits & 0x80 ? -magnitude : magnitude;
}

/**
 * The values a tensor of `dtype` stored in `bytes` must load as, after the documented conversion
 * (floats -> float32, integers -> int32, BOOL -> 0/1), or 'out-of-range' when an integer does not fit int32.
 */
export function referenceDecode(dtype: string, bytes: Uint8Array): number[] | 'out-of-range' {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / ELEMENT_BYTES[dtype]!;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let v: number | bigint;
    switch (dtype) {
      case 'F32': v = view.getFloat32(i * 4, true); break;
      case 'F64': v = Math.fround(view.getFloat64(i * 8, true)); break;
      case 'F16': v = referenceF16(view.getUint16(i * 2, true)); break;
      case 'BF16': v = referenceBf16(view.getUint16(i * 2, true)); break;
      case 'F8_E5M2': v = referenceF16(bytes[i]! << 8); break;
      case 'F8_E4M3': v = referenceF8E4M3(bytes[i]!); break;
      case 'BOOL': v = bytes[i] !== 0 ? 1 : 0; break;
      case 'U8': v = bytes[i]!; break;
      case 'I8': v = view.getInt8(i); break;
      case 'I16': v = view.getInt16(i * 2, true); break;
      case 'U16': v = view.getUint16(i * 2, true); break;
      case 'I32': v = view.getInt32(i * 4, true); break;
      case 'U32': v = view.getUint32(i * 4, true); break;
      case 'I64': v = view.getBigInt64(i * 8, true); break;
      case 'U64': v = view.getBigUint64(i * 8, true); break;
      default: throw new Error(`no reference decoder for ${dtype}`);
    }
    if (typeof v === 'bigint' || dtype === 'U32') {
      const big = BigInt(v);
      if (big < -2147483648n || big > 2147483647n) return 'out-of-range';
      v = Number(big);
    }
    out.push(v as number);
  }
  return out;
}

export const DECODED_DTYPE: Record<string, 'float32' | 'int32' | 'bool'> = {
  F32: 'float32', F64: 'float32', F16: 'float32', BF16: 'float32', F8_E5M2: 'float32', F8_E4M3: 'float32',
  BOOL: 'bool', U8: 'int32', I8: 'int32', I16: 'int32', U16: 'int32', I32: 'int32', U32: 'int32',
  I64: 'int32', U64: 'int32',
};

let finiteF16: { bits: number; value: number }[] | null = null;
/** Every non-negative finite binary16 value with its bits, ascending. */
function positiveF16(): { bits: number; value: number }[] {
  if (!finiteF16) {
    finiteF16 = [];
    for (let bits = 0; bits < 0x7c00; bits++) finiteF16.push({ bits, value: referenceF16(bits) });
  }
  return finiteF16;
}

/**
 * Round-to-nearest-even by search: the two neighbours of |x| among all binary16 values, the nearer one (ties
 * to the even bit pattern); past the largest finite value the rounding threshold is 65520 (IEEE overflow).
 */
export function nearestF16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  const table = positiveF16();
  const largest = table[table.length - 1]!;
  if (a >= largest.value) return sign | largest.bits;
  let lo = 0;
  let hi = table.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (table[mid]!.value <= a) lo = mid;
    else hi = mid;
  }
  const below = table[lo]!;
  const above = table[hi]!;
  if (a === below.value) return sign | below.bits;
  const dBelow = a - below.value;
  const dAbove = above.value - a;
  const pick = dBelow < dAbove ? below : dAbove < dBelow ? above : below.bits % 2 === 0 ? below : above;
  return sign | pick.bits;
}

/** bfloat16 round-to-nearest-even by comparing the truncated value with the next one up (exact in float64). */
export function nearestBf16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7fc0;
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, x);
  const f32 = view.getUint32(0);
  const sign = f32 & 0x80000000 ? 0x8000 : 0;
  const truncated = (f32 >>> 16) & 0x7fff;
  const a = Math.abs(Math.fround(x));
  const low = referenceBf16(truncated);
  if (a === low) return sign | truncated;
  // Above the largest finite bfloat16 the next pattern is infinity; IEEE rounds to it past the halfway point,
  // which is where the next pattern "would be" with an unbounded exponent.
  const high = truncated + 1 === 0x7f80 ? 2 ** 128 : referenceBf16(truncated + 1);
  const dLow = a - low;
  const dHigh = high - a;
  const up = dHigh < dLow || (dHigh === dLow && truncated % 2 === 1);
  return sign | (up ? truncated + 1 : truncated);
}

export function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}
