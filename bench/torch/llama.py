"""A Llama-family decoder in plain PyTorch with the shapes of @chimera/llm's CausalLM (pre-norm RMSNorm, RoPE
rotate-half, GQA causal attention, SwiGLU, untied LM head) and a key/value cache, for speed references only:
the benchmarks compare time, not values, so weights are PyTorch's default initialisation."""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotary_tables(head_dim, positions, theta=10000.0):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = positions[:, None].float() * inv[None, :]  # (T, Dh/2)
    full = torch.cat([angles, angles], -1)
    return full.cos(), full.sin()


def rotate_half(x):
    x1, x2 = x.chunk(2, -1)
    return torch.cat([-x2, x1], -1)


class Attention(nn.Module):
    def __init__(self, dim, heads, kv_heads):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        self.q_proj = nn.Linear(dim, heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(heads * self.head_dim, dim, bias=False)

    def forward(self, x, cos, sin, cache=None):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        past = 0
        if cache is not None:
            past = cache['length']
            cache['k'][:, :, past:past + t] = k
            cache['v'][:, :, past:past + t] = v
            k = cache['k'][:, :, :past + t]
            v = cache['v'][:, :, :past + t]
        groups = self.heads // self.kv_heads
        if groups > 1:
            k = k.repeat_interleave(groups, 1)
            v = v.repeat_interleave(groups, 1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # (B, H, T, S)
        if t > 1:
            s = k.shape[2]
            mask = torch.ones(t, s, dtype=torch.bool).triu(past + 1)
            scores = scores.masked_fill(mask, float('-inf'))
        out = scores.softmax(-1) @ v
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class Layer(nn.Module):
    def __init__(self, dim, heads, kv_heads, hidden, eps):
        super().__init__()
        self.input_layernorm = RMSNorm(dim, eps)
        self.self_attn = Attention(dim, heads, kv_heads)
        self.post_attention_layernorm = RMSNorm(dim, eps)
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x, cos, sin, cache=None):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin, cache)
        n = self.post_attention_layernorm(h)
        return h + self.down_proj(F.silu(self.gate_proj(n)) * self.up_proj(n))


class Llama(nn.Module):
    def __init__(self, vocab, dim, layers, heads, kv_heads, hidden, eps=1e-6):
        super().__init__()
        self.head_dim = dim // heads
        self.embed_tokens = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(Layer(dim, heads, kv_heads, hidden, eps) for _ in range(layers))
        self.norm = RMSNorm(dim, eps)
        self.lm_head = nn.Linear(dim, vocab, bias=False)

    def forward(self, ids, caches=None, last_only=False):
        past = caches[0]['length'] if caches else 0
        cos, sin = rotary_tables(self.head_dim, torch.arange(past, past + ids.shape[1]))
        x = self.embed_tokens(ids)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, caches[i] if caches else None)
        if caches:
            for c in caches:
                c['length'] += ids.shape[1]
        x = self.norm(x)
        return self.lm_head(x[:, -1:] if last_only else x)

    def new_caches(self, batch, max_length):
        attn = self.layers[0].self_attn
        shape = (batch, attn.kv_heads, max_length, attn.head_dim)
        return [{'k': torch.zeros(shape), 'v': torch.zeros(shape), 'length': 0} for _ in self.layers]


def adamw(model, lr=1e-3, weight_decay=0.01):
    """torch.optim.AdamW with Chimera's default decay filter: matrices decay, embeddings, norms and biases not."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and 'embed' not in name and 'norm' not in name else no_decay).append(p)
    return torch.optim.AdamW([{'params': decay, 'weight_decay': weight_decay}, {'params': no_decay, 'weight_decay': 0.0}], lr=lr)
