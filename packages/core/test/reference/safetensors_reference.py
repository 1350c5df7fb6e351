"""Safetensors reference for test/weights-reference.test.ts, built with torch (1.13 has no safetensors library,
so the format is encoded by hand with struct/json, independently of the TypeScript code).

  write DIR             writes DIR/torch.safetensors (every dtype), DIR/expected.json (values as float64 of the
                        stored values; specials as strings) and DIR/big_i64.safetensors (an I64 beyond int32).
  verify FILE SPEC      reads FILE (written by TypeScript) by hand and checks each tensor against SPEC:
                        {name: {dtype, shape, values}}, where values are the originals; torch converts them to
                        the dtype (round-to-nearest-even for F16/BF16) and the stored bits must match.
"""
import json
import math
import struct
import sys

import torch

TORCH_DTYPES = {
    'F64': torch.float64, 'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16,
    'I64': torch.int64, 'I32': torch.int32, 'I16': torch.int16, 'I8': torch.int8, 'U8': torch.uint8,
    'BOOL': torch.bool,
}
# Dtypes whose raw bytes are read through an integer view (frombuffer has no bfloat16 in torch 1.13).
BIT_VIEWS = {'F16': torch.int16, 'BF16': torch.int16}


def to_json_number(v):
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    v = float(v)
    if math.isnan(v):
        return 'NaN'
    if math.isinf(v):
        return 'Infinity' if v > 0 else '-Infinity'
    return v


def from_json_number(v):
    return float(v) if isinstance(v, str) else v


def tensor_bytes(t, dtype):
    t = t.contiguous()
    if dtype in BIT_VIEWS:
        t = t.view(BIT_VIEWS[dtype])
    if dtype == 'BOOL':
        t = t.to(torch.uint8)
    return t.numpy().tobytes()  # little-endian on every platform torch runs CI on


def encode(tensors, metadata=None):
    header, chunks, offset = {}, [], 0
    if metadata:
        header['__metadata__'] = metadata
    for name, (dtype, t) in tensors.items():
        data = tensor_bytes(t, dtype)
        header[name] = {'dtype': dtype, 'shape': list(t.shape), 'data_offsets': [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header).encode('utf-8')
    text += b' ' * ((8 - len(text) % 8) % 8)
    return struct.pack('<Q', len(text)) + text + b''.join(chunks)


def write(directory):
    torch.manual_seed(0)
    f16_values = [0.0, -0.0, 1.0, -2.5, 65504.0, 65519.0, 65520.0, 1e5, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26,
                  6.0e-8, 1.0 / 3.0, -1e-6, 0.1, float('inf'), float('-inf'), float('nan'), 2049.0, 2051.0]
    bf16_values = [0.0, -0.0, 1.0, 1.00390625, 1.01171875, 3.0e38, 3.4e38, 1e-40, 9.2e-41, 1.0 / 3.0, -7.5e-3,
                   float('inf'), float('-inf'), float('nan'), 65535.0]
    f32_values = [0.0, -0.0, 1.0, -1.5, 3.4028234663852886e38, 1.401298464324817e-45, 1.1754942106924411e-38,
                  float('inf'), float('-inf'), float('nan'), math.pi]
    tensors = {
        'f32.special': ('F32', torch.tensor(f32_values, dtype=torch.float32)),
        'f32.matrix': ('F32', torch.randn(3, 4)),
        'f32.conv': ('F32', torch.randn(2, 3, 2, 2)),
        'f32.scalar': ('F32', torch.tensor(-7.25)),
        'f32.empty': ('F32', torch.zeros(0, 3)),
        'f16.values': ('F16', torch.tensor(f16_values, dtype=torch.float16)),
        'f16.random': ('F16', torch.randn(4, 5).to(torch.float16)),
        'bf16.values': ('BF16', torch.tensor(bf16_values, dtype=torch.bfloat16)),
        'bf16.random': ('BF16', (torch.randn(3, 3) * 100).to(torch.bfloat16)),
        'f64.values': ('F64', torch.tensor([1.0 / 3.0, -1e-300, 1e300, 2.0 ** -149, 0.1, float('nan')],
                                           dtype=torch.float64)),
        'i64.values': ('I64', torch.tensor([0, 1, -1, 2 ** 31 - 1, -2 ** 31, 123456789], dtype=torch.int64)),
        'i64.empty': ('I64', torch.zeros(0, dtype=torch.int64)),
        'i32.values': ('I32', torch.tensor([[0, -5], [2 ** 31 - 1, -2 ** 31]], dtype=torch.int32)),
        'i16.values': ('I16', torch.tensor([-32768, -1, 0, 32767], dtype=torch.int16)),
        'i8.values': ('I8', torch.tensor([-128, -1, 0, 127], dtype=torch.int8)),
        'u8.values': ('U8', torch.tensor([0, 1, 128, 255], dtype=torch.uint8)),
        'bool.values': ('BOOL', torch.tensor([[True, False, True], [False, False, True]])),
        'unicode.名前.é': ('F32', torch.tensor([1.0, 2.0])),
    }
    expected = {
        name: {'dtype': dtype, 'shape': list(t.shape),
               'values': [to_json_number(v) for v in t.double().flatten().tolist()]}
        for name, (dtype, t) in tensors.items()
    }
    metadata = {'format': 'pt', 'source': 'torch ' + torch.__version__, 'note': 'ünïcödé'}
    with open(f'{directory}/torch.safetensors', 'wb') as f:
        f.write(encode(tensors, metadata))
    with open(f'{directory}/expected.json', 'w') as f:
        json.dump({'tensors': expected, 'metadata': metadata}, f)
    big = {'ids': ('I64', torch.tensor([1, 2 ** 40, 3], dtype=torch.int64))}
    with open(f'{directory}/big_i64.safetensors', 'wb') as f:
        f.write(encode(big))


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def verify(path, spec_path):
    with open(path, 'rb') as f:
        raw = f.read()
    with open(spec_path) as f:
        spec = json.load(f)
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n].decode('utf-8'))
    data = raw[8 + n:]
    metadata = header.pop('__metadata__', {})
    if metadata != spec.get('metadata', {}):
        fail(f'metadata {metadata!r} != {spec.get("metadata")!r}')
    if set(header) != set(spec['tensors']):
        fail(f'names {sorted(header)} != {sorted(spec["tensors"])}')
    spans = sorted((entry['data_offsets'], name) for name, entry in header.items())
    position = 0
    for (begin, end), name in spans:
        if begin != position:
            fail(f'{name}: begins at {begin}, expected {position} (gap or overlap)')
        position = end
    if position != len(data):
        fail(f'tensors cover {position} bytes, data section is {len(data)}')
    checked = []
    for name, want in spec['tensors'].items():
        entry = header[name]
        dtype = want['dtype']
        if entry['dtype'] != dtype or entry['shape'] != want['shape']:
            fail(f'{name}: header {entry["dtype"]} {entry["shape"]} != {dtype} {want["shape"]}')
        begin, end = entry['data_offsets']
        chunk = bytearray(data[begin:end])
        count = math.prod(want['shape'])
        view_dtype = BIT_VIEWS.get(dtype, torch.uint8 if dtype == 'BOOL' else TORCH_DTYPES[dtype])
        got = torch.frombuffer(chunk, dtype=view_dtype) if count else torch.zeros(0, dtype=view_dtype)
        if dtype in BIT_VIEWS:
            got = got.view(TORCH_DTYPES[dtype])
        if dtype == 'BOOL':
            if not all(b in (0, 1) for b in chunk):
                fail(f'{name}: BOOL bytes must be 0 or 1')
            got = got.to(torch.bool)
        got = got.reshape(want['shape'])
        expected = torch.tensor([from_json_number(v) for v in want['values']], dtype=torch.float64)
        expected = expected.to(TORCH_DTYPES[dtype]).reshape(want['shape'])
        if got.dtype.is_floating_point:
            same_nan = torch.equal(torch.isnan(got), torch.isnan(expected))
            finite = ~torch.isnan(expected)
            # Bitwise (through float64, exact for every dtype here), so -0 vs 0 is caught too.
            same = same_nan and torch.equal(got[finite].double(), expected[finite].double()) and torch.equal(
                torch.signbit(got[finite]), torch.signbit(expected[finite]))
        else:
            same = torch.equal(got, expected)
        if not same:
            fail(f'{name} ({dtype}): got {got.flatten().tolist()}, expected {expected.flatten().tolist()}')
        checked.append(name)
    print(json.dumps({'ok': True, 'checked': sorted(checked)}))


if __name__ == '__main__':
    if sys.argv[1] == 'write':
        write(sys.argv[2])
    elif sys.argv[1] == 'verify':
        verify(sys.argv[2], sys.argv[3])
    else:
        fail(f'unknown mode {sys.argv[1]}')
