"""PyTorch reference for test/blocks-parity.test.ts: the fusion building blocks written from their papers' math in
float64, with random weights, saved under Chimera's parameter names and layouts (Linear weights [in, out]).

  python3 fusion_reference.py DIR

writes DIR/reference.json with, per case, the weights, the inputs and the expected output, and prints its path.

- perceiver: Flamingo's Perceiver resampler (Alayrac et al. 2022; OpenFlamingo's PerceiverResampler): latents
  attend to LayerNorm(features) concatenated with LayerNorm(latents), then a GELU feed-forward, both residual;
  final LayerNorm. No biases in the projections.
- qformer: the simplified BLIP-2 Q-Former: pre-norm self-attention over the queries, cross-attention to
  LayerNorm(features), GELU feed-forward; final LayerNorm. Biases everywhere.
- xattn / xattn_rms: Flamingo's GATED XATTN-DENSE block with an additive media mask and a has-media row mask
  (the second case: RMSNorm and the feed-forward masked too, as Llama 3.2), grouped-query heads.
- mlp2x_gelu: LLaVA-1.5's projector.
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

torch.manual_seed(1234)
DT = torch.float64


def randn(*shape, scale=1.0):
    return torch.randn(*shape, dtype=DT) * scale


class Weights:
    """Collects named weights in Chimera's layout."""

    def __init__(self):
        self.tensors = {}

    def linear(self, name, fan_in, fan_out, bias):
        w = randn(fan_in, fan_out, scale=1.0 / math.sqrt(fan_in))
        self.tensors[f'{name}.weight'] = w
        b = None
        if bias:
            b = randn(fan_out, scale=0.1)
            self.tensors[f'{name}.bias'] = b
        return (w, b)

    def norm(self, name, dim, bias=True):
        w = 1.0 + randn(dim, scale=0.2)
        self.tensors[f'{name}.weight'] = w
        b = None
        if bias:
            b = randn(dim, scale=0.1)
            self.tensors[f'{name}.bias'] = b
        return (w, b)

    def raw(self, name, tensor):
        self.tensors[name] = tensor
        return tensor


def apply_linear(x, params):
    w, b = params
    y = x @ w
    return y if b is None else y + b


def layer_norm(x, params, eps=1e-5):
    w, b = params
    return F.layer_norm(x, (x.shape[-1],), w, b, eps)


def rms_norm(x, params, eps=1e-6):
    w, _ = params
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def attention(x, context, p, heads, kv_heads, head_dim, bias=None):
    """Multi-head attention of queries from x to keys/values from context; kv head g serves query heads g*G..."""
    b, t, _ = x.shape
    s = context.shape[1]
    q = apply_linear(x, p['q']).view(b, t, heads, head_dim).transpose(1, 2)
    k = apply_linear(context, p['k']).view(b, s, kv_heads, head_dim).transpose(1, 2)
    v = apply_linear(context, p['v']).view(b, s, kv_heads, head_dim).transpose(1, 2)
    group = heads // kv_heads
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(head_dim)
    if bias is not None:
        scores = scores + bias
    mixed = torch.softmax(scores, dim=-1) @ v
    return apply_linear(mixed.transpose(1, 2).reshape(b, t, heads * head_dim), p['o'])


def attention_params(w, name, dim, kv_dim, heads, kv_heads, head_dim, qkv_bias, out_bias):
    return {
        'q': w.linear(f'{name}.q_proj', dim, heads * head_dim, qkv_bias),
        'k': w.linear(f'{name}.k_proj', kv_dim, kv_heads * head_dim, qkv_bias),
        'v': w.linear(f'{name}.v_proj', kv_dim, kv_heads * head_dim, qkv_bias),
        'o': w.linear(f'{name}.o_proj', heads * head_dim, dim, out_bias),
    }


def feed_forward(x, p):
    return apply_linear(F.gelu(apply_linear(x, p['fc1'])), p['fc2'])


def tensor_json(t):
    return {'shape': list(t.shape), 'data': t.reshape(-1).tolist()}


def perceiver_case():
    dim, latents_n, depth, heads, head_dim, mult = 8, 3, 2, 2, 4, 2
    w = Weights()
    latents = w.raw('latents', randn(latents_n, dim))
    layers = []
    for i in range(depth):
        pre = f'layers.{i}'
        layers.append({
            'media_norm': w.norm(f'{pre}.media_norm', dim),
            'latent_norm': w.norm(f'{pre}.latent_norm', dim),
            'attn': attention_params(w, f'{pre}.attn', dim, dim, heads, heads, head_dim, False, False),
            'ffn_norm': w.norm(f'{pre}.ffn_norm', dim),
            'ffn': {'fc1': w.linear(f'{pre}.ffn.fc1', dim, dim * mult, False), 'fc2': w.linear(f'{pre}.ffn.fc2', dim * mult, dim, False)},
        })
    final = w.norm('norm', dim)
    features = randn(2, 5, dim)
    x = latents.unsqueeze(0).expand(2, -1, -1)
    for layer in layers:
        media = layer_norm(features, layer['media_norm'])
        lat = layer_norm(x, layer['latent_norm'])
        kv = torch.cat([media, lat], dim=1)
        x = x + attention(lat, kv, layer['attn'], heads, heads, head_dim)
        x = x + feed_forward(layer_norm(x, layer['ffn_norm']), layer['ffn'])
    out = layer_norm(x, final)
    return {
        'name': 'perceiver',
        'options': {'dim': dim, 'numLatents': latents_n, 'depth': depth, 'heads': heads, 'headDim': head_dim, 'ffMult': mult},
        'weights': {k: tensor_json(v) for k, v in w.tensors.items()},
        'inputs': {'features': tensor_json(features)},
        'output': tensor_json(out),
    }


def qformer_case():
    feature_dim, dim, queries_n, depth, heads, mult = 6, 8, 3, 2, 2, 2
    head_dim = dim // heads
    w = Weights()
    queries = w.raw('query_tokens', randn(queries_n, dim, scale=0.5))
    media_norm = w.norm('media_norm', feature_dim)
    layers = []
    for i in range(depth):
        pre = f'layers.{i}'
        layers.append({
            'self_norm': w.norm(f'{pre}.self_norm', dim),
            'self_attn': attention_params(w, f'{pre}.self_attn', dim, dim, heads, heads, head_dim, True, True),
            'cross_norm': w.norm(f'{pre}.cross_norm', dim),
            'cross_attn': attention_params(w, f'{pre}.cross_attn', dim, feature_dim, heads, heads, head_dim, True, True),
            'ffn_norm': w.norm(f'{pre}.ffn_norm', dim),
            'ffn': {'fc1': w.linear(f'{pre}.ffn.fc1', dim, dim * mult, True), 'fc2': w.linear(f'{pre}.ffn.fc2', dim * mult, dim, True)},
        })
    final = w.norm('norm', dim)
    features = randn(2, 4, feature_dim)
    media = layer_norm(features, media_norm)
    h = queries.unsqueeze(0).expand(2, -1, -1)
    for layer in layers:
        n = layer_norm(h, layer['self_norm'])
        h = h + attention(n, n, layer['self_attn'], heads, heads, head_dim)
        h = h + attention(layer_norm(h, layer['cross_norm']), media, layer['cross_attn'], heads, heads, head_dim)
        h = h + feed_forward(layer_norm(h, layer['ffn_norm']), layer['ffn'])
    out = layer_norm(h, final)
    return {
        'name': 'qformer',
        'options': {'featureDim': feature_dim, 'dim': dim, 'numQueries': queries_n, 'depth': depth, 'heads': heads, 'ffMult': mult},
        'weights': {k: tensor_json(v) for k, v in w.tensors.items()},
        'inputs': {'features': tensor_json(features)},
        'output': tensor_json(out),
    }


def xattn_case(name, norm_kind, mask_ff):
    dim, kv_dim, heads, kv_heads, head_dim, mult = 8, 6, 2, 1, 4, 2
    slots, per_slot, T, B = 2, 3, 5, 2
    w = Weights()
    norm = layer_norm if norm_kind == 'layer' else rms_norm
    attn_norm = w.norm('attn_norm', dim, bias=norm_kind == 'layer')
    attn = attention_params(w, 'attn', dim, kv_dim, heads, kv_heads, head_dim, False, False)
    attn_gate = w.raw('attn_gate', torch.tensor([0.3], dtype=DT))
    ff_norm = w.norm('ff_norm', dim, bias=norm_kind == 'layer')
    ff = {'fc1': w.linear('ff.fc1', dim, dim * mult, False), 'fc2': w.linear('ff.fc2', dim * mult, dim, False)}
    ff_gate = w.raw('ff_gate', torch.tensor([-0.45], dtype=DT))
    hidden = randn(B, T, dim)
    media = randn(B, slots * per_slot, kv_dim)
    # Row 0: item 0 from position 1, item 1 from position 3 ('latest'); row 1: one item from position 2.
    first_item = [[1, 3], [2, None]]
    bias = torch.full((B, 1, T, slots * per_slot), -1e9, dtype=DT)
    has_media = torch.zeros(B, T, dtype=DT)
    for b in range(B):
        for t in range(T):
            seen = [j for j, start in enumerate(first_item[b]) if start is not None and start <= t]
            if not seen:
                continue
            latest = seen[-1]
            bias[b, 0, t, latest * per_slot:(latest + 1) * per_slot] = 0.0
            has_media[b, t] = 1.0
    attended = attention(norm(hidden, attn_norm), media, attn, heads, kv_heads, head_dim, bias)
    h = hidden + torch.tanh(attn_gate) * attended * has_media.unsqueeze(-1)
    ff_out = feed_forward(norm(h, ff_norm), ff)
    if mask_ff:
        ff_out = ff_out * has_media.unsqueeze(-1)
    out = h + torch.tanh(ff_gate) * ff_out
    return {
        'name': name,
        'options': {'dim': dim, 'kvDim': kv_dim, 'numHeads': heads, 'numKvHeads': kv_heads, 'headDim': head_dim, 'ffMult': mult,
                    'norm': norm_kind, 'maskFeedForward': mask_ff},
        'weights': {k: tensor_json(v) for k, v in w.tensors.items()},
        'inputs': {'hidden': tensor_json(hidden), 'media': tensor_json(media), 'bias': tensor_json(bias), 'hasMedia': tensor_json(has_media)},
        'output': tensor_json(out),
    }


def projector_case():
    w = Weights()
    l1 = w.linear('linear_1', 6, 8, True)
    l2 = w.linear('linear_2', 8, 8, True)
    features = randn(7, 6)
    out = apply_linear(F.gelu(apply_linear(features, l1)), l2)
    return {
        'name': 'mlp2x_gelu',
        'options': {'inputDim': 6, 'outputDim': 8},
        'weights': {k: tensor_json(v) for k, v in w.tensors.items()},
        'inputs': {'features': tensor_json(features)},
        'output': tensor_json(out),
    }


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    cases = [perceiver_case(), qformer_case(), xattn_case('xattn', 'layer', False), xattn_case('xattn_rms', 'rms', True), projector_case()]
    path = os.path.join(out_dir, 'reference.json')
    with open(path, 'w') as f:
        json.dump({'torch': torch.__version__, 'cases': cases}, f)
    print(path)


if __name__ == '__main__':
    main()
