"""An independent PyTorch reference of the Hugging Face Llama-family causal LMs (Llama / SmolLM, Qwen2, Qwen3),
written from the math for test/checkpoint-parity.test.ts. Torch 1.13 (Debian python3-torch) has neither
transformers nor the safetensors library, so the HF checkpoint layout is read and written by hand (struct/json).

The math, as HF's modeling_llama / modeling_qwen2 / modeling_qwen3 define it:
  RMSNorm      x * rsqrt(mean(x^2) + eps) computed in (at least) float32, cast back, times the weight
  RoPE         rotate-half on [first half | second half] of each head, cos/sin of position * inv_freq,
               inv_freq = theta^(-2i/d), optionally scaled ('linear', or 'llama3' with its smooth band)
  attention    GQA: each key/value head serves numHeads / numKvHeads consecutive query heads (repeat_kv);
               scores / sqrt(head_dim) plus an additive mask (causal, and padding keys from attention_mask)
  QK-norm      Qwen3: RMSNorm over head_dim of every query and key head, before RoPE
  biases       Qwen2: q/k/v projections; Llama attention_bias: q/k/v/o; Llama mlp_bias: gate/up/down
  MLP          down(silu(gate(x)) * up(x))
  head         lm_head, or the embedding table when tie_word_embeddings
  positions    with left padding HF derives position_ids from the attention mask: cumsum(mask) - 1, and 1 at pads

Usage:
  write OUT_DIR      for every case, writes OUT_DIR/<case>/ (config.json, safetensors in [out, in] layout, single
                     or sharded with model.safetensors.index.json) and OUT_DIR/<case>/reference.json (input_ids,
                     attention_mask and the logits of a left-padded prompt batch, computed from the checkpoint as
                     read back from disk); prints the path of OUT_DIR/manifest.json.
  forward JOBS_JSON  JOBS_JSON lists {"dir", "inputs", "output"}: loads each checkpoint directory (e.g. written by
                     TypeScript) with this file's reader, checks its key set against its config.json, runs the
                     batch of `inputs` (a JSON with input_ids and attention_mask) and writes {"logits"} to `output`.
"""
import json
import math
import os
import struct
import sys

import torch

COMPUTE = torch.float64  # the reference's own precision; the files hold F32 / F16 / BF16

STORAGE = {'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16}
TORCH_DTYPE_NAME = {'F32': 'float32', 'F16': 'float16', 'BF16': 'bfloat16'}
# torch 1.13's frombuffer has no bfloat16: read the raw 16-bit words and reinterpret them.
READ_AS = {'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.int16, 'I64': torch.int64, 'I32': torch.int32}


# ---------------------------------------------------------------------------------------------------------------
# The model


def rms_norm(x, weight, eps):
    upcast = torch.float64 if x.dtype == torch.float64 else torch.float32
    h = x.to(upcast)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def rope_inv_freq(head_dim, theta, scaling):
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    if not scaling:
        return inv_freq
    kind = scaling.get('rope_type', scaling.get('type'))
    if kind == 'default':
        return inv_freq
    if kind == 'linear':
        return inv_freq / scaling['factor']
    if kind == 'llama3':
        factor = scaling['factor']
        low, high = scaling['low_freq_factor'], scaling['high_freq_factor']
        context = scaling['original_max_position_embeddings']
        out = []
        for f in inv_freq.tolist():
            wavelength = 2 * math.pi / f
            if wavelength < context / high:  # fast rotations: kept
                out.append(f)
            elif wavelength > context / low:  # slow rotations: interpolated by the factor
                out.append(f / factor)
            else:  # the band between: a linear blend in context / wavelength
                smooth = (context / wavelength - low) / (high - low)
                out.append((1 - smooth) * f / factor + smooth * f)
        return torch.tensor(out, dtype=torch.float64)
    raise ValueError(f'rope type {kind!r} is not in this reference')


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def linear(x, weights, name):
    """PyTorch layout: weight [out, in]; an absent bias is no bias."""
    y = x @ weights[name + '.weight'].t()
    bias = weights.get(name + '.bias')
    return y if bias is None else y + bias


def repeat_kv(x, groups):
    """[B, Hkv, T, Dh] -> [B, Hkv * groups, T, Dh]: key/value head j serves query heads j*groups .. j*groups+groups-1."""
    b, hkv, t, d = x.shape
    return x[:, :, None, :, :].expand(b, hkv, groups, t, d).reshape(b, hkv * groups, t, d)


def position_ids_from_mask(attention_mask):
    positions = attention_mask.long().cumsum(-1) - 1
    positions.masked_fill_(attention_mask == 0, 1)
    return positions


def additive_mask(attention_mask, dtype):
    """[B, 1, T, T]: 0 where query t may see key s (s <= t and s is real), the dtype's minimum elsewhere."""
    b, t = attention_mask.shape
    causal = torch.tril(torch.ones(t, t, dtype=torch.bool))
    allowed = causal[None, :, :] & attention_mask.bool()[:, None, :]
    mask = torch.zeros(b, t, t, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None, :, :]


def forward(cfg, weights, input_ids, attention_mask, inputs_embeds=None):
    """Logits [B, T, V] of HF's <Model>ForCausalLM for a (left-)padded batch; `inputs_embeds` [B, T, D] replaces the
    embedding lookup (LLaVA splices image features into it)."""
    hidden = cfg['hidden_size']
    n_heads = cfg['num_attention_heads']
    n_kv = cfg.get('num_key_value_heads') or n_heads
    head_dim = cfg.get('head_dim') or hidden // n_heads
    eps = cfg['rms_norm_eps']
    qk_norm = cfg['model_type'] == 'qwen3'
    b, t = input_ids.shape

    positions = position_ids_from_mask(attention_mask)  # [B, T]
    inv_freq = rope_inv_freq(head_dim, cfg.get('rope_theta', 10000.0), cfg.get('rope_scaling'))
    angles = positions.to(torch.float64)[:, :, None] * inv_freq[None, None, :]  # [B, T, Dh/2]
    angles = torch.cat([angles, angles], dim=-1)
    cos, sin = angles.cos()[:, None].to(COMPUTE), angles.sin()[:, None].to(COMPUTE)  # [B, 1, T, Dh]
    mask = additive_mask(attention_mask, COMPUTE)

    x = weights['model.embed_tokens.weight'][input_ids] if inputs_embeds is None else inputs_embeds  # [B, T, D]
    for i in range(cfg['num_hidden_layers']):
        p = f'model.layers.{i}.'
        h = rms_norm(x, weights[p + 'input_layernorm.weight'], eps)
        q = linear(h, weights, p + 'self_attn.q_proj').view(b, t, n_heads, head_dim)
        k = linear(h, weights, p + 'self_attn.k_proj').view(b, t, n_kv, head_dim)
        v = linear(h, weights, p + 'self_attn.v_proj').view(b, t, n_kv, head_dim)
        if qk_norm:
            q = rms_norm(q, weights[p + 'self_attn.q_norm.weight'], eps)
            k = rms_norm(k, weights[p + 'self_attn.k_norm.weight'], eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, T, Dh]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k, v = repeat_kv(k, n_heads // n_kv), repeat_kv(v, n_heads // n_kv)
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim) + mask  # [B, H, T, T]
        attended = torch.softmax(scores, dim=-1) @ v  # [B, H, T, Dh]
        attended = attended.transpose(1, 2).reshape(b, t, n_heads * head_dim)
        x = x + linear(attended, weights, p + 'self_attn.o_proj')
        h = rms_norm(x, weights[p + 'post_attention_layernorm.weight'], eps)
        gate = linear(h, weights, p + 'mlp.gate_proj')
        x = x + linear(torch.nn.functional.silu(gate) * linear(h, weights, p + 'mlp.up_proj'), weights, p + 'mlp.down_proj')
    x = rms_norm(x, weights['model.norm.weight'], eps)
    head = weights['model.embed_tokens.weight'] if cfg.get('tie_word_embeddings') else weights['lm_head.weight']
    return x @ head.t()


def expected_keys(cfg):
    """Every tensor name (and [out, in] shape) an HF checkpoint of this config holds."""
    d, v = cfg['hidden_size'], cfg['vocab_size']
    n_heads = cfg['num_attention_heads']
    n_kv = cfg.get('num_key_value_heads') or n_heads
    head_dim = cfg.get('head_dim') or d // n_heads
    ffn = cfg['intermediate_size']
    kind = cfg['model_type']
    qkv_bias = kind == 'qwen2' or cfg.get('attention_bias', False)
    o_bias = kind != 'qwen2' and cfg.get('attention_bias', False)
    mlp_bias = kind == 'llama' and cfg.get('mlp_bias', False)
    keys = {'model.embed_tokens.weight': [v, d], 'model.norm.weight': [d]}
    if not cfg.get('tie_word_embeddings'):
        keys['lm_head.weight'] = [v, d]
    for i in range(cfg['num_hidden_layers']):
        p = f'model.layers.{i}.'
        keys[p + 'input_layernorm.weight'] = [d]
        keys[p + 'post_attention_layernorm.weight'] = [d]
        for name, out in [('q_proj', n_heads * head_dim), ('k_proj', n_kv * head_dim), ('v_proj', n_kv * head_dim)]:
            keys[p + f'self_attn.{name}.weight'] = [out, d]
            if qkv_bias:
                keys[p + f'self_attn.{name}.bias'] = [out]
        keys[p + 'self_attn.o_proj.weight'] = [d, n_heads * head_dim]
        if o_bias:
            keys[p + 'self_attn.o_proj.bias'] = [d]
        if kind == 'qwen3':
            keys[p + 'self_attn.q_norm.weight'] = [head_dim]
            keys[p + 'self_attn.k_norm.weight'] = [head_dim]
        for name, shape in [('gate_proj', [ffn, d]), ('up_proj', [ffn, d]), ('down_proj', [d, ffn])]:
            keys[p + f'mlp.{name}.weight'] = shape
            if mlp_bias:
                keys[p + f'mlp.{name}.bias'] = [shape[0]]
    return keys


# ---------------------------------------------------------------------------------------------------------------
# The HF checkpoint layout, by hand


def encode_safetensors(tensors, dtype):
    """tensors: name -> float tensor, stored as `dtype` (F32 / F16 / BF16), or (dtype, tensor) to override."""
    header, chunks, offset = {'__metadata__': {'format': 'pt'}}, [], 0
    for name, value in tensors.items():
        kind, t = value if isinstance(value, tuple) else (dtype, value)
        t = t.to(STORAGE[kind]).contiguous()
        raw = (t.view(torch.int16) if kind == 'BF16' else t).numpy().tobytes()
        header[name] = {'dtype': kind, 'shape': list(t.shape), 'data_offsets': [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode('utf-8')
    text += b' ' * ((8 - len(text) % 8) % 8)
    return struct.pack('<Q', len(text)) + text + b''.join(chunks)


def decode_safetensors(path):
    with open(path, 'rb') as f:
        data = f.read()
    (length,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + length])
    header.pop('__metadata__', None)
    out = {}
    for name, entry in header.items():
        begin, end = entry['data_offsets']
        raw = bytearray(data[8 + length + begin:8 + length + end])
        t = torch.frombuffer(raw, dtype=READ_AS[entry['dtype']]) if raw else torch.zeros(0, dtype=READ_AS[entry['dtype']])
        if entry['dtype'] == 'BF16':
            t = t.view(torch.bfloat16)
        out[name] = t.reshape(entry['shape'])
    return out


def write_checkpoint(directory, cfg, tensors, dtype, shards):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, 'config.json'), 'w') as f:
        json.dump({**cfg, 'torch_dtype': TORCH_DTYPE_NAME[dtype]}, f, indent=2)
    names = list(tensors)
    if shards == 1:
        with open(os.path.join(directory, 'model.safetensors'), 'wb') as f:
            f.write(encode_safetensors(tensors, dtype))
        return
    per_shard = math.ceil(len(names) / shards)
    weight_map, total = {}, 0
    for s in range(shards):
        file = f'model-{s + 1:05d}-of-{shards:05d}.safetensors'
        part = {n: tensors[n] for n in names[s * per_shard:(s + 1) * per_shard]}
        with open(os.path.join(directory, file), 'wb') as f:
            f.write(encode_safetensors(part, dtype))
        for n, value in part.items():
            weight_map[n] = file
            t = value[1] if isinstance(value, tuple) else value
            total += t.numel() * (4 if dtype == 'F32' else 2)
    with open(os.path.join(directory, 'model.safetensors.index.json'), 'w') as f:
        json.dump({'metadata': {'total_size': total}, 'weight_map': weight_map}, f, indent=2)


def read_checkpoint(directory):
    """config.json and every tensor (as float64) of an HF directory, single-file or sharded."""
    with open(os.path.join(directory, 'config.json')) as f:
        cfg = json.load(f)
    index_path = os.path.join(directory, 'model.safetensors.index.json')
    tensors = {}
    if os.path.exists(index_path):
        with open(index_path) as f:
            weight_map = json.load(f)['weight_map']
        for file in sorted(set(weight_map.values())):
            part = decode_safetensors(os.path.join(directory, file))
            listed = {n for n, fl in weight_map.items() if fl == file}
            if set(part) != listed:
                raise SystemExit(f'{file}: holds {sorted(part)} but the index lists {sorted(listed)}')
            tensors.update(part)
    else:
        tensors = decode_safetensors(os.path.join(directory, 'model.safetensors'))
    tensors = {n: t.to(COMPUTE) for n, t in tensors.items() if not n.endswith('rotary_emb.inv_freq')}
    expected = expected_keys(cfg)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(n for n in expected if n in tensors and list(tensors[n].shape) != expected[n])
    if missing or unexpected or wrong:
        raise SystemExit(f'{directory}: missing {missing}, unexpected {unexpected}, wrong shape {wrong}')
    return cfg, tensors


# ---------------------------------------------------------------------------------------------------------------
# Cases


def random_weights(cfg, generator):
    """Scaled so activations stay O(1) and the logits are far from zero (a weak init would hide errors)."""
    out = {}
    for name, shape in expected_keys(cfg).items():
        if name.endswith('norm.weight'):
            t = 1.0 + 0.3 * torch.randn(shape, generator=generator, dtype=torch.float64)
        elif name.endswith('.bias'):
            t = 0.3 * torch.randn(shape, generator=generator, dtype=torch.float64)
        elif name == 'model.embed_tokens.weight':
            t = 0.5 * torch.randn(shape, generator=generator, dtype=torch.float64)
        else:  # [out, in]
            t = torch.randn(shape, generator=generator, dtype=torch.float64) / math.sqrt(shape[1])
        out[name] = t.to(torch.float32)
    return out


def base_config(model_type, **extra):
    cfg = {
        'architectures': [{'llama': 'LlamaForCausalLM', 'qwen2': 'Qwen2ForCausalLM', 'qwen3': 'Qwen3ForCausalLM'}[model_type]],
        'model_type': model_type,
        'vocab_size': 96,
        'hidden_size': 64,
        'intermediate_size': 112,
        'num_hidden_layers': 2,
        'num_attention_heads': 4,
        'num_key_value_heads': 2,
        'hidden_act': 'silu',
        'max_position_embeddings': 128,
        'rms_norm_eps': 1e-5,
        'rope_theta': 10000.0,
        'rope_scaling': None,
        'tie_word_embeddings': False,
        'bos_token_id': 1,
        'eos_token_id': 2,
        'pad_token_id': 0,
    }
    cfg.update(extra)
    return cfg


CASES = [
    # Llama 3 style: untied head, GQA (4 query heads over 2 KV heads), llama3 RoPE scaling whose band puts the 16
    # frequencies of a 16-wide head in all three regimes (wavelengths 6.3 < 8 kept, 19.9 blended, >= 62.8 scaled).
    # Sharded in three files, with the rotary_emb.inv_freq buffers older checkpoints carry.
    {
        'name': 'llama_gqa_llama3',
        'config': base_config(
            'llama',
            attention_bias=False,
            mlp_bias=False,
            rope_scaling={
                'rope_type': 'llama3',
                'factor': 8.0,
                'low_freq_factor': 1.0,
                'high_freq_factor': 4.0,
                'original_max_position_embeddings': 32,
            },
        ),
        'dtype': 'F32',
        'shards': 3,
        'inv_freq_buffers': True,
    },
    # Qwen2: q/k/v biases, tied embeddings, theta 1e6, one model.safetensors.
    {
        'name': 'qwen2_bias_tied',
        'config': base_config('qwen2', tie_word_embeddings=True, rope_theta=1000000.0, rms_norm_eps=1e-6, use_sliding_window=False),
        'dtype': 'F32',
        'shards': 1,
    },
    # SmolLM style (model_type llama): tied, one KV head for four query heads, width 48 (head 12), BF16 weights.
    {
        'name': 'smollm_bf16_tied',
        'config': base_config('llama', hidden_size=48, intermediate_size=96, num_key_value_heads=1, tie_word_embeddings=True,
                              rope_theta=100000.0, num_hidden_layers=3),
        'dtype': 'BF16',
        'shards': 1,
    },
    # Qwen3: RMS QK-norm, explicit head_dim (4 x 16 = 64 != hidden 48), untied, F16 weights in two shards.
    {
        'name': 'qwen3_qknorm_f16',
        'config': base_config('qwen3', hidden_size=48, head_dim=16, intermediate_size=96, rope_theta=1000000.0,
                              rms_norm_eps=1e-6, attention_bias=False),
        'dtype': 'F16',
        'shards': 2,
    },
]

PAD = 0


def prompt_batch(cfg, generator):
    """Three prompts of 9, 6 and 3 real tokens, left-padded to 9."""
    lengths, width = [9, 6, 3], 9
    ids = torch.full((len(lengths), width), PAD, dtype=torch.long)
    mask = torch.zeros((len(lengths), width), dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, width - n:] = torch.randint(3, cfg['vocab_size'], (n,), generator=generator)
        mask[row, width - n:] = 1
    return ids, mask


def write(out_dir):
    generator = torch.Generator().manual_seed(20240607)
    manifest = {'torch': torch.__version__, 'cases': []}
    for case in CASES:
        cfg = case['config']
        directory = os.path.join(out_dir, case['name'])
        tensors = random_weights(cfg, generator)
        if case.get('inv_freq_buffers'):
            head_dim = cfg.get('head_dim') or cfg['hidden_size'] // cfg['num_attention_heads']
            inv_freq = rope_inv_freq(head_dim, cfg['rope_theta'], None).to(torch.float32)
            for i in range(cfg['num_hidden_layers']):
                tensors[f'model.layers.{i}.self_attn.rotary_emb.inv_freq'] = ('F32', inv_freq)
        write_checkpoint(directory, cfg, tensors, case['dtype'], case['shards'])
        read_cfg, weights = read_checkpoint(directory)  # the logits come from what is on disk
        input_ids, attention_mask = prompt_batch(cfg, generator)
        with torch.no_grad():
            logits = forward(read_cfg, weights, input_ids, attention_mask)
        reference = {
            'input_ids': input_ids.tolist(),
            'attention_mask': attention_mask.tolist(),
            'logits': logits.tolist(),
        }
        path = os.path.join(directory, 'reference.json')
        with open(path, 'w') as f:
            json.dump(reference, f)
        manifest['cases'].append({'name': case['name'], 'dir': directory, 'reference': path, 'dtype': case['dtype'],
                                  'shards': case['shards']})
    path = os.path.join(out_dir, 'manifest.json')
    with open(path, 'w') as f:
        json.dump(manifest, f, indent=2)
    print(path)


def run_jobs(jobs_path):
    with open(jobs_path) as f:
        jobs = json.load(f)
    for job in jobs:
        cfg, weights = read_checkpoint(job['dir'])
        with open(job['inputs']) as f:
            inputs = json.load(f)
        input_ids = torch.tensor(inputs['input_ids'], dtype=torch.long)
        attention_mask = torch.tensor(inputs['attention_mask'], dtype=torch.long)
        with torch.no_grad():
            logits = forward(cfg, weights, input_ids, attention_mask)
        with open(job['output'], 'w') as f:
            json.dump({'logits': logits.tolist()}, f)
    print(len(jobs))


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == 'write':
        write(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == 'forward':
        run_jobs(sys.argv[2])
    else:
        raise SystemExit('usage: llama_reference.py write OUT_DIR | forward JOBS_JSON')
