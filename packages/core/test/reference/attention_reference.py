"""PyTorch reference for Chimera's attention, RoPE and RMSNorm parity test.

Usage: attention_reference.py OUT_DIR  -> writes OUT_DIR/attention_reference.json

An independent torch implementation of HF-Llama-style attention, written from the math (float64):
rotate-half RoPE (default, llama3-scaled, and Qwen2-VL M-RoPE), GQA by repeating KV heads, causal or custom
additive masks, QK-norm over the head dim (RMSNorm as in Qwen3, or LayerNorm), Qwen2 q/k/v biases; and RMSNorm.
Weights are stored in PyTorch layout (Linear weight [out, in]).
"""
import json
import math
import os
import sys

import torch

torch.manual_seed(0)
DTYPE = torch.float64
MASKED = -1e9


def tensor_json(t):
    t = t.detach()
    return {"shape": list(t.shape), "data": t.reshape(-1).tolist()}


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def inverse_frequencies(head_dim, theta, scaling=None):
    exponents = torch.arange(0, head_dim, 2, dtype=DTYPE) / head_dim
    inv = 1.0 / (theta ** exponents)
    if scaling is None:
        return inv
    if scaling["type"] == "linear":
        return inv / scaling["factor"]
    # Llama 3.1: keep short wavelengths, stretch long ones by `factor`, blend linearly in between.
    factor = scaling["factor"]
    low, high = scaling["lowFreqFactor"], scaling["highFreqFactor"]
    context = scaling["originalMaxPositionEmbeddings"]
    wavelength = 2 * math.pi / inv
    blend = ((context / wavelength) - low) / (high - low)
    blended = (1 - blend) * inv / factor + blend * inv
    out = torch.where(wavelength > context / low, inv / factor, inv)
    in_between = (wavelength >= context / high) & (wavelength <= context / low)
    return torch.where(in_between, blended, out)


def rope_tables(positions, inv):
    """positions [B, T] -> cos, sin [B, T, head_dim] in the rotate-half layout."""
    angles = positions.to(DTYPE)[..., None] * inv  # [B, T, D/2]
    doubled = torch.cat([angles, angles], dim=-1)
    return doubled.cos(), doubled.sin()


def mrope_tables(positions3, inv, sections):
    """positions3 [3, B, T]; chunk i of the doubled channel split (sections * 2) follows axis i % 3."""
    cos, sin = rope_tables(positions3, inv)  # [3, B, T, D]
    split = list(sections) * 2
    pick = lambda table: torch.cat([chunk[i % 3] for i, chunk in enumerate(table.split(split, dim=-1))], dim=-1)
    return pick(cos), pick(sin)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def repeat_kv(x, groups):
    """[B, Hkv, S, Dh] -> [B, Hkv * groups, S, Dh]; query head h reads KV head h // groups."""
    b, hkv, s, d = x.shape
    return x[:, :, None].expand(b, hkv, groups, s, d).reshape(b, hkv * groups, s, d)


def attention(cfg, w, x, cos=None, sin=None, bias=None):
    b, t, _ = x.shape
    h, hkv, dh = cfg["numHeads"], cfg["numKvHeads"], cfg["headDim"]

    def proj(name, inp):
        y = inp @ w[name + ".weight"].T
        if name + ".bias" in w:
            y = y + w[name + ".bias"]
        return y

    q = proj("q_proj", x).view(b, t, h, dh)
    k = proj("k_proj", x).view(b, t, hkv, dh)
    v = proj("v_proj", x).view(b, t, hkv, dh)
    norm = cfg.get("qkNorm")
    if norm == "rms":
        q = rms_norm(q, w["q_norm.weight"], cfg["qkNormEps"])
        k = rms_norm(k, w["k_norm.weight"], cfg["qkNormEps"])
    elif norm == "layer":
        q = layer_norm(q, w["q_norm.weight"], w["q_norm.bias"], cfg["qkNormEps"])
        k = layer_norm(k, w["k_norm.weight"], w["k_norm.bias"], cfg["qkNormEps"])
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    if cos is not None:
        c, s = cos[:, None], sin[:, None]
        q = q * c + rotate_half(q) * s
        k = k * c + rotate_half(k) * s
    k = repeat_kv(k, h // hkv)
    v = repeat_kv(v, h // hkv)
    scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
    if bias is not None:
        scores = scores + bias
    elif cfg.get("causal"):
        future = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(future, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    out = (probs @ v).transpose(1, 2).reshape(b, t, h * dh)
    return proj("o_proj", out)


def make_weights(cfg):
    dim, h, hkv, dh = cfg["dim"], cfg["numHeads"], cfg["numKvHeads"], cfg["headDim"]
    shapes = {"q_proj": (h * dh, dim), "k_proj": (hkv * dh, dim), "v_proj": (hkv * dh, dim), "o_proj": (dim, h * dh)}
    w = {}
    for name, (out_f, in_f) in shapes.items():
        w[name + ".weight"] = torch.randn(out_f, in_f, dtype=DTYPE) / math.sqrt(in_f)
        if cfg.get("qkvBias") and name != "o_proj":
            w[name + ".bias"] = 0.5 * torch.randn(out_f, dtype=DTYPE)
    if cfg.get("qkNorm"):
        for name in ("q_norm", "k_norm"):
            w[name + ".weight"] = 1 + 0.3 * torch.randn(dh, dtype=DTYPE)
            if cfg["qkNorm"] == "layer":
                w[name + ".bias"] = 0.2 * torch.randn(dh, dtype=DTYPE)
    return w


def case(name, cfg, batch, length, rope=None, positions=None, bias=None):
    w = make_weights(cfg)
    x = torch.randn(batch, length, cfg["dim"], dtype=DTYPE)
    if positions is None:
        positions = torch.arange(length).repeat(batch, 1)
    cos = sin = None
    if rope is not None:
        inv = inverse_frequencies(cfg["headDim"], rope["theta"], rope.get("scaling"))
        if rope.get("sections"):
            cos, sin = mrope_tables(positions, inv, rope["sections"])
        else:
            cos, sin = rope_tables(positions, inv)
    out = attention(cfg, w, x, cos, sin, bias)
    result = {
        "name": name,
        "config": cfg,
        "rope": rope,
        "weights": {k: tensor_json(v) for k, v in w.items()},
        "x": tensor_json(x),
        "positions": tensor_json(positions),
        "output": tensor_json(out),
    }
    if bias is not None:
        result["bias"] = tensor_json(bias)
    if cos is not None:
        result["cos"] = tensor_json(cos)
    return result


def padding_bias(batch, length, valid):
    """Causal plus key padding at the end of each row ([B, 1, T, T]); no query row is fully masked."""
    bias = torch.zeros(batch, 1, length, length, dtype=DTYPE)
    for b in range(batch):
        for i in range(length):
            for j in range(length):
                if j > i or j >= valid[b]:
                    bias[b, 0, i, j] = MASKED
    return bias


def main():
    out_dir = sys.argv[1]
    base = {"dim": 32, "numHeads": 4, "numKvHeads": 2, "headDim": 8, "causal": True}
    cases = [
        case("llama GQA causal RoPE", base, 2, 6, rope={"theta": 10000.0},
             positions=torch.tensor([[0, 1, 2, 3, 4, 5], [4, 5, 6, 7, 8, 9]])),
        case("llama3-scaled RoPE", {**base, "headDim": 16, "numHeads": 2, "numKvHeads": 1}, 2, 5,
             rope={"theta": 10000.0, "scaling": {"type": "llama3", "factor": 8.0, "lowFreqFactor": 1.0,
                                                 "highFreqFactor": 4.0, "originalMaxPositionEmbeddings": 64}},
             positions=torch.tensor([[0, 17, 40, 90, 130], [3, 4, 5, 6, 7]])),
        case("M-RoPE (MHA)", {**base, "headDim": 16, "numHeads": 2, "numKvHeads": 2}, 1, 6,
             rope={"theta": 10000.0, "sections": [2, 3, 3]},
             positions=torch.tensor([[[0, 1, 1, 1, 1, 5]], [[0, 1, 1, 2, 2, 5]], [[0, 1, 2, 1, 2, 5]]])),
        case("padding bias, GQA 4:1", {**base, "numHeads": 4, "numKvHeads": 1}, 2, 5, rope={"theta": 500.0},
             bias=padding_bias(2, 5, [5, 3])),
        case("QK-norm rms + Qwen2 qkv bias", {**base, "qkNorm": "rms", "qkNormEps": 1e-6, "qkvBias": True}, 2, 4,
             rope={"theta": 1000000.0}),
        case("QK-norm layer (Chameleon-style), no RoPE", {**base, "qkNorm": "layer", "qkNormEps": 1e-5}, 1, 5),
    ]
    x = torch.randn(2, 3, 16, dtype=DTYPE)
    weight = 1 + 0.3 * torch.randn(16, dtype=DTYPE)
    rmsnorm = {"eps": 1e-6, "x": tensor_json(x), "weight": tensor_json(weight), "output": tensor_json(rms_norm(x, weight, 1e-6))}
    path = os.path.join(out_dir, "attention_reference.json")
    with open(path, "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases, "rmsnorm": rmsnorm}, f)
    print(path)


if __name__ == "__main__":
    main()
