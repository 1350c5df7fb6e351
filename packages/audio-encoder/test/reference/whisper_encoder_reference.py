"""PyTorch reference for test/encoder-hf.test.ts: random-init Whisper encoders written from the math with HF's
module structure and parameter names (transformers' WhisperEncoder; transformers is not needed), saved in HF layout.

  python3 whisper_encoder_reference.py make DIR
      writes DIR/<case>/model.safetensors + config.json for each case (the encoder under `model.encoder.`, as
      WhisperForConditionalGeneration saves it, plus decoder tensors the loader must ignore) and DIR/reference.json:
      per case the features (B, T, mels: Chimera's layout), hidden states by HF hidden_states index, the 2x-pooled
      output (Audio Flamingo 3 / Qwen2-Audio: AvgPool1d(2) before layer_norm), and gradients of
      sum(output * R) for a fixed random R with respect to the features and three weights; prints its path.
  python3 whisper_encoder_reference.py check DIR CASE EXPORT_DIR
      loads EXPORT_DIR/model.safetensors (Chimera's export) into a fresh reference encoder with strict key
      checking, reruns CASE's features and prints JSON {"max_abs_diff": ...} against reference.json.

Safetensors are encoded and decoded by hand (torch 1.13 has no safetensors library). Linear weights are stored
[out, in] and conv weights [out, in, k], as PyTorch holds them. Frame counts below 2 * max_source_positions use the
first rows of the position table (openai/whisper's behaviour; HF's encoder insists on exactly 3000 frames).
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)

CASES = {
    # name: (mels, d_model, layers, heads, ffn, max_source_positions, batch, frames)
    'tiny': (8, 32, 2, 4, 64, 32, 2, 64),
    'mels80': (80, 64, 3, 4, 128, 120, 1, 197),
}


def gelu(x):
    # Exact GELU written out: this machine's torch 1.13 F.gelu gives wrong float32 gradients when the incoming
    # gradient is non-contiguous (as after the encoder's permute); measured 3.8 max error against float64.
    return 0.5 * x * (1.0 + torch.erf(x * 0.7071067811865476))


def sinusoids(length, channels, max_timescale=10000):
    log_timescale_increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-log_timescale_increment * torch.arange(channels // 2))
    scaled_time = torch.arange(length)[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1)


class WhisperAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x):
        batch, length, dim = x.shape
        head_dim = dim // self.heads

        def split(t):
            return t.view(batch, length, self.heads, head_dim).transpose(1, 2)  # (B, h, T, dh)

        q = split(self.q_proj(x)) * head_dim ** -0.5
        probs = torch.softmax(q @ split(self.k_proj(x)).transpose(-1, -2), dim=-1)  # (B, h, T, T)
        mixed = (probs @ split(self.v_proj(x))).transpose(1, 2).reshape(batch, length, dim)
        return self.out_proj(mixed)


class WhisperEncoderLayer(nn.Module):
    def __init__(self, dim, heads, ffn):
        super().__init__()
        self.self_attn = WhisperAttention(dim, heads)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn)
        self.fc2 = nn.Linear(ffn, dim)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, x):
        x = x + self.self_attn(self.self_attn_layer_norm(x))
        return x + self.fc2(gelu(self.fc1(self.final_layer_norm(x))))


class WhisperEncoder(nn.Module):
    def __init__(self, mels, dim, layers, heads, ffn, positions):
        super().__init__()
        self.conv1 = nn.Conv1d(mels, dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(dim, dim, kernel_size=3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(positions, dim)
        with torch.no_grad():
            self.embed_positions.weight.copy_(sinusoids(positions, dim))
        self.embed_positions.requires_grad_(False)
        self.layers = nn.ModuleList([WhisperEncoderLayer(dim, heads, ffn) for _ in range(layers)])
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, features, pool=1):
        """features (B, mels, T) -> (hidden_states tuple as HF, output)."""
        x = gelu(self.conv1(features))
        x = gelu(self.conv2(x)).permute(0, 2, 1)  # (B, T', D)
        x = x + self.embed_positions.weight[: x.shape[1]]
        states = []
        for layer in self.layers:
            states.append(x)
            x = layer(x)
        states.append(self.layer_norm(x))
        if pool > 1:
            x = F.avg_pool1d(x.permute(0, 2, 1), pool, pool).permute(0, 2, 1)
        return states, self.layer_norm(x)


class Decoder(nn.Module):
    """Stand-in decoder tensors the encoder loader must not read."""

    def __init__(self, dim, positions):
        super().__init__()
        self.embed_positions = nn.Embedding(positions, dim)
        self.layer_norm = nn.LayerNorm(dim)


class WhisperModel(nn.Module):
    def __init__(self, case):
        super().__init__()
        mels, dim, layers, heads, ffn, positions, _, _ = CASES[case]
        self.encoder = WhisperEncoder(mels, dim, layers, heads, ffn, positions)
        self.decoder = Decoder(dim, 16)


class WhisperForConditionalGeneration(nn.Module):
    def __init__(self, case):
        super().__init__()
        self.model = WhisperModel(case)
        self.proj_out = nn.Linear(CASES[case][1], 50, bias=False)


def perturb_norms(module):
    """Non-trivial LayerNorm scales and shifts, so a missed or misnamed norm shows."""
    for m in module.modules():
        if isinstance(m, nn.LayerNorm):
            with torch.no_grad():
                m.weight.copy_(1 + 0.2 * torch.randn_like(m.weight))
                m.bias.copy_(0.2 * torch.randn_like(m.bias))


def encode_safetensors(tensors):
    header, chunks, offset = {'__metadata__': {'format': 'pt'}}, [], 0
    for name, t in tensors.items():
        data = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(t.shape), 'data_offsets': [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header).encode('utf-8')
    text += b' ' * ((8 - len(text) % 8) % 8)
    return struct.pack('<Q', len(text)) + text + b''.join(chunks)


def decode_safetensors(path):
    with open(path, 'rb') as f:
        raw = f.read()
    (length,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + length])
    body = raw[8 + length:]
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        assert info['dtype'] == 'F32', f'{name}: expected F32, got {info["dtype"]}'
        start, end = info['data_offsets']
        out[name] = torch.frombuffer(bytearray(body[start:end]), dtype=torch.float32).reshape(info['shape'])
    return out


def stored(t):
    return {'shape': list(t.shape), 'data': t.detach().reshape(-1).tolist()}


def config_json(case):
    mels, dim, layers, heads, ffn, positions, _, _ = CASES[case]
    return {'model_type': 'whisper', 'architectures': ['WhisperForConditionalGeneration'], 'num_mel_bins': mels,
            'd_model': dim, 'encoder_layers': layers, 'encoder_attention_heads': heads, 'encoder_ffn_dim': ffn,
            'decoder_layers': 1, 'decoder_attention_heads': heads, 'decoder_ffn_dim': ffn,
            'max_source_positions': positions, 'activation_function': 'gelu'}


def case_inputs(case):
    mels, dim, _, _, _, _, batch, frames = CASES[case]
    g = torch.Generator().manual_seed(7)
    features = torch.randn(batch, frames, mels, generator=g)  # Chimera's (B, T, mels)
    return features, g


def make(out_dir):
    reference = {'torch': torch.__version__, 'cases': []}
    for i, case in enumerate(CASES):
        torch.manual_seed(100 + i)
        full = WhisperForConditionalGeneration(case)
        perturb_norms(full)
        encoder = full.model.encoder
        directory = os.path.join(out_dir, case)
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, 'model.safetensors'), 'wb') as f:
            f.write(encode_safetensors(full.state_dict()))
        with open(os.path.join(directory, 'config.json'), 'w') as f:
            json.dump(config_json(case), f)

        features, g = case_inputs(case)
        x = features.clone().requires_grad_(True)
        states, output = encoder(x.permute(0, 2, 1))
        weight = torch.randn(output.shape, generator=g)
        (output * weight).sum().backward()
        named = dict(encoder.named_parameters())
        grads = {name: stored(named[name].grad) for name in
                 ['conv1.weight', 'layers.0.self_attn.q_proj.weight', f'layers.{len(encoder.layers) - 1}.fc2.bias']}
        with torch.no_grad():
            _, pooled = encoder(features.permute(0, 2, 1), pool=2)
        reference['cases'].append({
            'name': case,
            'features': stored(features),
            'states': {str(k): stored(s) for k, s in enumerate(states)},
            'output': stored(output),
            'pooled': stored(pooled),
            'loss_weight': stored(weight),
            'grad_features': stored(x.grad),
            'grads': grads,
        })
    # Whisper-tiny's table (1500 x 384): a few rows, where float32 rounding of t * inv_timescale matters most.
    table = sinusoids(1500, 384)
    rows = [0, 1, 777, 1499]
    reference['sinusoid_rows'] = {'rows': rows, 'channels': 384, 'data': table[rows].reshape(-1).tolist()}
    path = os.path.join(out_dir, 'reference.json')
    with open(path, 'w') as f:
        json.dump(reference, f)
    print(path)


def check(out_dir, case, export_dir):
    with open(os.path.join(out_dir, 'reference.json')) as f:
        reference = json.load(f)
    entry = next(c for c in reference['cases'] if c['name'] == case)
    full = WhisperForConditionalGeneration(case)
    tensors = decode_safetensors(os.path.join(export_dir, 'model.safetensors'))
    prefix = 'model.encoder.'
    assert all(k.startswith(prefix) for k in tensors), f'keys outside {prefix}: {[k for k in tensors if not k.startswith(prefix)][:3]}'
    full.model.encoder.load_state_dict({k[len(prefix):]: v for k, v in tensors.items()}, strict=True)
    features = torch.tensor(entry['features']['data']).reshape(entry['features']['shape'])
    with torch.no_grad():
        _, output = full.model.encoder(features.permute(0, 2, 1))
    expected = torch.tensor(entry['output']['data']).reshape(entry['output']['shape'])
    with open(os.path.join(export_dir, 'config.json')) as f:
        config = json.load(f)
    print(json.dumps({'max_abs_diff': (output - expected).abs().max().item(), 'keys': len(tensors),
                      'config_matches': all(config[k] == v for k, v in config_json(case).items()
                                            if k.startswith(('num_mel', 'd_model', 'encoder_', 'max_source')))}))


if __name__ == '__main__':
    if sys.argv[1] == 'make':
        make(sys.argv[2])
    elif sys.argv[1] == 'check':
        check(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        raise SystemExit(f'unknown command {sys.argv[1]}; use make DIR or check DIR CASE EXPORT_DIR')
