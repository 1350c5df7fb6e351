"""Seconds per forward pass of a Whisper-shaped conv1d front end, as JSON.

Whisper's audio stem (Radford et al. 2022, openai/whisper model.py AudioEncoder): conv1 (n_mels -> width, kernel 3,
padding 1) + GELU, conv2 (width -> width, kernel 3, stride 2, padding 1) + GELU; tiny's shapes by default (80 mel
bins, 3000 frames, width 384), batch 1, no gradients.

    python3 bench/torch/conv_whisper.py --threads 1
"""
import argparse, json
import torch
import torch.nn as nn
import torch.nn.functional as F
from timing import time_steps

p = argparse.ArgumentParser()
for name, default in [('mels', 80), ('frames', 3000), ('width', 384), ('batch', 1), ('steps', 10), ('warmup', 3), ('threads', 1)]:
    p.add_argument('--' + name, type=int, default=default)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
conv1 = nn.Conv1d(a.mels, a.width, 3, padding=1)
conv2 = nn.Conv1d(a.width, a.width, 3, stride=2, padding=1)
mel = torch.randn(a.batch, a.mels, a.frames)


def forward():
    with torch.no_grad():
        return F.gelu(conv2(F.gelu(conv1(mel)))).shape


times, cpu = time_steps(forward, a.warmup, a.steps)
times.sort()
print(json.dumps({'threads': a.threads, 'seconds_per_step': times[len(times) // 2], 'best_seconds': times[0],
                  'best_cpu_seconds': min(cpu), 'steps': a.steps, 'torch': torch.__version__}))
