/**
 * Safetensors dtypes: element sizes, and the by-hand conversions between file bytes and the typed arrays
 * TensorFlow.js holds (float32, int32, bool). Half floats (IEEE binary16, bfloat16) are decoded exactly and
 * encoded with round-to-nearest-even, including subnormals, infinities and NaN.
 */

/** Every dtype the safetensors format defines (huggingface/safetensors `Dtype`). */
export const SAFETENSORS_DTYPES = [
  'BOOL',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'F64',
  'I64',
  'U64',
] as const;
/** A dtype name of the safetensors format ('F32', 'BF16', 'I64', ...). */
export type SafetensorsDtype = (typeof SAFETENSORS_DTYPES)[number];

/** The dtypes this library can write: floats as F32/F16/BF16, ints as I32/I64, bools as BOOL. */
export type WritableDtype = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'BOOL';

/** Bytes per element of every safetensors dtype. */
export const DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

/** The TensorFlow.js dtype each file dtype decodes to. Integers narrower than 64 bits widen to int32. */
export const DECODED_TF_DTYPE: Readonly<Record<SafetensorsDtype, 'float32' | 'int32' | 'bool'>> = {
  BOOL: 'bool',
  U8: 'int32',
  I8: 'int32',
  F8_E5M2: 'float32',
  F8_E4M3: 'float32',
  I16: 'int32',
  U16: 'int32',
  F16: 'float32',
  BF16: 'float32',
  I32: 'int32',
  U32: 'int32',
  F32: 'float32',
  F64: 'float32',
  I64: 'int32',
  U64: 'int32',
};

export function isSafetensorsDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && (SAFETENSORS_DTYPES as readonly string[]).includes(value);
}

/** Little-endian hosts can view file bytes as typed arrays directly; big-endian ones go through DataView. */
export const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// Shared scratch for reinterpreting float32 <-> uint32 bits.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** binary16 bits -> its exact value (every binary16 value is representable in float32). */
export function f16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24; // zero and subnormals
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

let f16Table: Float32Array | null = null;
/** All 65536 binary16 values as float32, built once on first use (256 KB) so decoding is a table lookup. */
function halfTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) f16Table[bits] = f16BitsToNumber(bits);
  }
  return f16Table;
}

/** float32 value -> binary16 bits, rounding to nearest even; overflow gives infinity, NaN stays NaN. */
export function numberToF16Bits(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff; // float32 biased exponent
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | (mantissa ? 0x7e00 | (mantissa >>> 13) : 0x7c00);
  if (exponent > 142) return sign | 0x7c00; // >= 2^16: beyond binary16 range
  if (exponent >= 113) {
    // Normal binary16: keep 10 mantissa bits, round the 13 dropped ones. A carry may roll into the exponent
    // (and up to infinity), which is exactly what the bit layout gives.
    let half = ((exponent - 112) << 10) | (mantissa >>> 13);
    const rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++;
    return sign | half;
  }
  // Subnormal binary16 (or zero): value = m * 2^(exponent - 150) with the implicit bit, in units of 2^-24.
  if (exponent === 0) return sign; // float32 subnormals are far below 2^-25 and round to zero
  const m = mantissa | 0x800000;
  const shift = 126 - exponent; // >= 14
  if (shift > 24) return sign; // below 2^-25 (exactly 2^-25 ties to even zero at shift 25)
  let half = m >>> shift;
  const rest = m & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (rest > halfway || (rest === halfway && half & 1)) half++;
  return sign | half;
}

/** bfloat16 bits -> value (the upper half of a float32). */
export function bf16BitsToNumber(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0]!;
}

/** float32 value -> bfloat16 bits, rounding to nearest even; NaN stays a quiet NaN. */
export function numberToBf16Bits(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0]!;
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) & 0x8000) | 0x7fc0;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** F8_E5M2 is the top byte of a binary16. */
export function f8e5m2BitsToNumber(bits: number): number {
  return f16BitsToNumber((bits & 0xff) << 8);
}

/** F8_E4M3 (the "fn" variant PyTorch and safetensors use): bias 7, no infinities, NaN only at S.1111.111. */
export function f8e4m3BitsToNumber(bits: number): number {
  const sign = bits & 0x80 ? -1 : 1;
  const exponent = (bits >>> 3) & 0xf;
  const mantissa = bits & 0x7;
  if (exponent === 0xf && mantissa === 0x7) return NaN;
  if (exponent === 0) return sign * mantissa * 2 ** -9;
  return sign * (1 + mantissa / 8) * 2 ** (exponent - 7);
}

export type DecodedValues = Float32Array | Int32Array | Uint8Array;

/** Failure to convert one tensor's bytes; the caller adds the tensor name and file. */
export class DtypeConversionError extends Error {
  override name = 'DtypeConversionError';
}

/**
 * Decodes `count` elements of `dtype` from `bytes` (exactly count * size bytes) into the array TensorFlow.js
 * will hold. When `bytes` starts a fresh buffer that nobody else holds (`owned`), F32/I32 are viewed without
 * copying; otherwise every result is a copy, so the tensor never aliases the caller's memory.
 */
export function decodeElements(dtype: SafetensorsDtype, bytes: Uint8Array, count: number, owned = false): DecodedValues {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const canView = HOST_IS_LITTLE_ENDIAN && bytes.byteOffset % 4 === 0;
  switch (dtype) {
    case 'F32': {
      if (canView) {
        const direct = new Float32Array(bytes.buffer, bytes.byteOffset, count);
        return owned ? direct : direct.slice();
      }
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
      return out;
    }
    case 'I32': {
      if (canView) {
        const direct = new Int32Array(bytes.buffer, bytes.byteOffset, count);
        return owned ? direct : direct.slice();
      }
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(i * 4, true);
      return out;
    }
    case 'F16': {
      const table = halfTable();
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = table[view.getUint16(i * 2, true)]!;
      return out;
    }
    case 'BF16': {
      const out = new Float32Array(count);
      const outBits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) outBits[i] = view.getUint16(i * 2, true) << 16;
      return out;
    }
    case 'F64': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(i * 8, true);
      return out;
    }
    case 'F8_E5M2': {
      const table = halfTable();
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = table[bytes[i]! << 8]!;
      return out;
    }
    case 'F8_E4M3': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = f8e4m3BitsToNumber(bytes[i]!);
      return out;
    }
    case 'BOOL': {
      const out = new Uint8Array(count);
      for (let i = 0; i < count; i++) out[i] = bytes[i] ? 1 : 0;
      return out;
    }
    case 'U8':
      return Int32Array.from(bytes.subarray(0, count));
    case 'I8':
      return Int32Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, count));
    case 'I16': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt16(i * 2, true);
      return out;
    }
    case 'U16': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getUint16(i * 2, true);
      return out;
    }
    case 'U32': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        const v = view.getUint32(i * 4, true);
        if (v > 0x7fffffff) throw outOfInt32(dtype, i, String(v));
        out[i] = v;
      }
      return out;
    }
    case 'I64': {
      // Fits int32 exactly when the high word is the sign extension of the low word (compared as int32 words,
      // so no float rounding of 64-bit values is involved).
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        const low = view.getInt32(i * 8, true);
        const high = view.getInt32(i * 8 + 4, true);
        if (high !== low >> 31) throw outOfInt32(dtype, i, view.getBigInt64(i * 8, true).toString());
        out[i] = low;
      }
      return out;
    }
    case 'U64': {
      // Unsigned: fits int32 only when the high word is zero and the low word is below 2^31. (The signed rule
      // would read 2^64 - 1 as -1.)
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        const low = view.getUint32(i * 8, true);
        const high = view.getUint32(i * 8 + 4, true);
        if (high !== 0 || low > 0x7fffffff) throw outOfInt32(dtype, i, view.getBigUint64(i * 8, true).toString());
        out[i] = low;
      }
      return out;
    }
  }
}

function outOfInt32(dtype: SafetensorsDtype, index: number, value: string): DtypeConversionError {
  return new DtypeConversionError(
    `${dtype} element ${index} is ${value}, outside int32 [-2147483648, 2147483647], the only ` +
      'integer type TensorFlow.js has; re-save this tensor as int32 (values in range) or as a float dtype',
  );
}

/** Encodes values into little-endian bytes of `dtype`. F32 and I32 reuse the input's memory on LE hosts. */
export function encodeElements(values: Float32Array | Int32Array | Uint8Array, dtype: WritableDtype): Uint8Array {
  const count = values.length;
  switch (dtype) {
    case 'F32': {
      const floats = values instanceof Float32Array ? values : Float32Array.from(values);
      if (HOST_IS_LITTLE_ENDIAN) return new Uint8Array(floats.buffer, floats.byteOffset, floats.byteLength);
      const out = new Uint8Array(count * 4);
      const view = new DataView(out.buffer);
      for (let i = 0; i < count; i++) view.setFloat32(i * 4, floats[i]!, true);
      return out;
    }
    case 'I32': {
      const ints = values instanceof Int32Array ? values : Int32Array.from(values);
      if (HOST_IS_LITTLE_ENDIAN) return new Uint8Array(ints.buffer, ints.byteOffset, ints.byteLength);
      const out = new Uint8Array(count * 4);
      const view = new DataView(out.buffer);
      for (let i = 0; i < count; i++) view.setInt32(i * 4, ints[i]!, true);
      return out;
    }
    case 'I64': {
      const out = new Uint8Array(count * 8);
      const view = new DataView(out.buffer);
      for (let i = 0; i < count; i++) {
        const v = values[i]! | 0;
        view.setInt32(i * 8, v, true);
        view.setInt32(i * 8 + 4, v >> 31, true);
      }
      return out;
    }
    case 'F16':
    case 'BF16': {
      const toBits = dtype === 'F16' ? numberToF16Bits : numberToBf16Bits;
      const out = new Uint8Array(count * 2);
      const view = new DataView(out.buffer);
      for (let i = 0; i < count; i++) view.setUint16(i * 2, toBits(values[i]!), true);
      return out;
    }
    case 'BOOL': {
      const out = new Uint8Array(count);
      for (let i = 0; i < count; i++) out[i] = values[i] ? 1 : 0;
      return out;
    }
  }
}
