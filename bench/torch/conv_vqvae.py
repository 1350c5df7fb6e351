"""Seconds per training step (forward, MSE reconstruction loss, backward, AdamW) of a VQ-VAE-shaped conv stack, as JSON.

The shapes of bench/conv.ts's model (NCHW here, NHWC there): 64x64 RGB, conv_in 3->32, four stride-2 downsampling
convs (32, 64, 128, 128 channels: 64x64 -> 4x4), the mirrored decoder (nearest 2x upsampling + 3x3 conv each) and
conv_out 32->3, each conv after the first preceded by GroupNorm(8) + SiLU. No quantizer: only the convolutions,
norms and optimizer are compared.

    python3 bench/torch/conv_vqvae.py --batch 8 --threads 1
"""
import argparse, json
import torch
import torch.nn as nn
import torch.nn.functional as F
from timing import time_steps

p = argparse.ArgumentParser()
for name, default in [('batch', 8), ('size', 64), ('groups', 8), ('steps', 5), ('warmup', 2), ('threads', 1)]:
    p.add_argument('--' + name, type=int, default=default)
p.add_argument('--widths', default='32,32,64,128,128')
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
widths = [int(w) for w in a.widths.split(',')]


def block(cin, cout, stride=1, upsample=False):
    layers = [nn.GroupNorm(a.groups, cin), nn.SiLU()]
    if upsample:
        layers.append(nn.Upsample(scale_factor=2, mode='nearest'))
    layers.append(nn.Conv2d(cin, cout, 3, stride=stride, padding=1))
    return layers


enc = [nn.Conv2d(3, widths[0], 3, padding=1)]
for cin, cout in zip(widths[:-1], widths[1:]):
    enc += block(cin, cout, stride=2)
dec = []
rev = widths[::-1]
for cin, cout in zip(rev[:-1], rev[1:]):
    dec += block(cin, cout, upsample=True)
model = nn.Sequential(*enc, *dec, *block(widths[0], 3))
decay = [p for p in model.parameters() if p.dim() >= 2]
no_decay = [p for p in model.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.01}, {'params': no_decay, 'weight_decay': 0.0}], lr=1e-3)
images = torch.rand(a.batch, 3, a.size, a.size) * 2 - 1


def step():
    opt.zero_grad(set_to_none=True)
    loss = F.mse_loss(model(images), images)
    loss.backward()
    opt.step()
    return loss.item()


times, cpu = time_steps(step, a.warmup, a.steps)
times.sort()
print(json.dumps({'threads': a.threads, 'seconds_per_step': times[len(times) // 2], 'best_seconds': times[0],
                  'best_cpu_seconds': min(cpu), 'steps': a.steps, 'torch': torch.__version__,
                  'params': sum(p.numel() for p in model.parameters())}))
