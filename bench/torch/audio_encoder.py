"""Seconds per forward pass of a Whisper-tiny-shaped encoder on 30 s of log-mel features, as JSON.

The PyTorch twin of bench/audio-encoder.ts: Whisper's encoder (Radford et al. 2022; HF WhisperEncoder's layout):
conv1 (k3, pad 1) + GELU, conv2 (k3, stride 2, pad 1) + GELU, fixed sinusoidal positions, pre-LN blocks (k_proj
without bias), a final LayerNorm; --pool 2 average-pools before the final norm (Audio Flamingo 3). Whisper-tiny's
shapes by default (80 mels, 3000 frames, width 384, 4 layers, 6 heads, MLP 1536), batch 1, no gradients.

    python3 bench/torch/audio_encoder.py --threads 1
"""
import argparse, json, math
import torch
import torch.nn as nn
import torch.nn.functional as F
from timing import time_steps

p = argparse.ArgumentParser()
for name, default in [('mels', 80), ('frames', 3000), ('width', 384), ('layers', 4), ('heads', 6), ('ffn', 1536),
                      ('batch', 1), ('pool', 1), ('steps', 5), ('warmup', 2), ('threads', 1)]:
    p.add_argument('--' + name, type=int, default=default)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)


class Block(nn.Module):
    def __init__(self, dim, heads, ffn):
        super().__init__()
        self.heads = heads
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim, bias=False)
        self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, ffn), nn.Linear(ffn, dim)

    def forward(self, x):
        b, t, d = x.shape
        h = self.self_attn_layer_norm(x)
        split = lambda y: y.view(b, t, self.heads, d // self.heads).transpose(1, 2)  # (B, h, T, dh)
        q = split(self.q_proj(h)) * (d // self.heads) ** -0.5
        probs = torch.softmax(q @ split(self.k_proj(h)).transpose(-1, -2), dim=-1)
        x = x + self.out_proj((probs @ split(self.v_proj(h))).transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(a.mels, a.width, 3, padding=1)
        self.conv2 = nn.Conv1d(a.width, a.width, 3, stride=2, padding=1)
        half = a.width // 2
        inv = torch.exp(-math.log(10000) / (half - 1) * torch.arange(half))
        t = torch.arange(1500)[:, None] * inv[None, :]
        self.register_buffer('positions', torch.cat([torch.sin(t), torch.cos(t)], dim=1))
        self.layers = nn.ModuleList([Block(a.width, a.heads, a.ffn) for _ in range(a.layers)])
        self.layer_norm = nn.LayerNorm(a.width)

    def forward(self, mel):
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).permute(0, 2, 1)
        x = x + self.positions[: x.shape[1]]
        for layer in self.layers:
            x = layer(x)
        if a.pool > 1:
            x = F.avg_pool1d(x.permute(0, 2, 1), a.pool, a.pool).permute(0, 2, 1)
        return self.layer_norm(x)


encoder = Encoder().eval()
mel = torch.randn(a.batch, a.mels, a.frames)


def forward():
    with torch.no_grad():
        return encoder(mel).shape


times, cpu = time_steps(forward, a.warmup, a.steps)
times.sort()
print(json.dumps({'threads': a.threads, 'seconds_per_step': times[len(times) // 2], 'best_seconds': times[0],
                  'best_cpu_seconds': min(cpu), 'steps': a.steps, 'torch': torch.__version__}))
