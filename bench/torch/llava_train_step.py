"""Seconds per training step of a LLaVA-style model (ViT -> mlp2x_gelu projector -> Llama), as JSON: the twin of
bench/train-step.ts's composed model. LLaVA stage 2: the projector and the LLM learn, the vision tower is frozen
(run without gradients). Image features fill the first positions of each row, text the rest; the loss covers the
text only.

    python3 bench/torch/llava_train_step.py --threads 1
"""
import argparse, json
import torch
import torch.nn as nn
import torch.nn.functional as F
from timing import time_steps
from llama import Llama, adamw, rotary_tables

p = argparse.ArgumentParser()
for name, default in [('vocab', 260), ('hidden', 256), ('layers', 4), ('heads', 4), ('intermediate', 688),
                      ('image-size', 64), ('patch', 8), ('vision-width', 192), ('vision-layers', 4), ('vision-heads', 3),
                      ('text', 64), ('batch', 8), ('steps', 2), ('warmup', 1), ('threads', 1)]:
    p.add_argument('--' + name, type=int, default=default)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class VisionLayer(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-5), nn.LayerNorm(dim, eps=1e-5)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), QuickGELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """CLIP-style: patch convolution, class token, learned positions, pre-LayerNorm blocks."""

    def __init__(self):
        super().__init__()
        grid = a.image_size // a.patch
        self.patch = nn.Conv2d(3, a.vision_width, a.patch, a.patch, bias=False)
        self.cls = nn.Parameter(torch.zeros(1, 1, a.vision_width))
        self.pos = nn.Parameter(torch.zeros(1, grid * grid + 1, a.vision_width))
        self.pre_norm = nn.LayerNorm(a.vision_width, eps=1e-5)
        self.layers = nn.ModuleList(VisionLayer(a.vision_width, a.vision_heads) for _ in range(a.vision_layers))

    def forward(self, images):
        x = self.patch(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        x = self.pre_norm(x)
        for layer in self.layers:
            x = layer(x)
        return x[:, 1:]  # patch features, class token dropped (LLaVA's 'patch' selection)


vit = ViT().requires_grad_(False)
projector = nn.Sequential(nn.Linear(a.vision_width, a.hidden), nn.GELU(), nn.Linear(a.hidden, a.hidden))
llm = Llama(a.vocab, a.hidden, a.layers, a.heads, a.heads, a.intermediate)
trainable = nn.ModuleDict({'projector': projector, 'llm': llm})
opt = adamw(trainable)
images = torch.rand(a.batch, 3, a.image_size, a.image_size)
ids = torch.randint(0, a.vocab, (a.batch, a.text))
image_tokens = (a.image_size // a.patch) ** 2


def step():
    opt.zero_grad(set_to_none=True)
    with torch.no_grad():
        features = vit(images)
    x = torch.cat([projector(features), llm.embed_tokens(ids)], 1)
    cos, sin = rotary_tables(llm.head_dim, torch.arange(x.shape[1]))
    for layer in llm.layers:
        x = layer(x, cos, sin)
    logits = llm.lm_head(llm.norm(x))
    text_logits = logits[:, image_tokens:-1]  # positions that predict the next text token
    loss = F.cross_entropy(text_logits.reshape(-1, a.vocab), ids[:, 1:].reshape(-1))
    loss.backward()
    opt.step()
    return loss.item()


times, cpu = time_steps(step, a.warmup, a.steps)
print(json.dumps({'threads': a.threads, 'best_seconds': min(times), 'best_cpu_seconds': min(cpu), 'steps': a.steps,
                  'torch': torch.__version__, 'tokens_per_step': a.batch * (image_tokens + a.text)}))
