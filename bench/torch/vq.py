"""Seconds per VQ-VAE training step and per VQ decode, as JSON: the PyTorch twin of bench/vq.ts.

The model is LlamaGen's VQ layout (the reference module of @chimera/vq-tokenizer's parity test,
packages/vq-tokenizer/test/reference/vq_reference.py): 64x64 RGB, ch 32, ch_mult 1,1,2,2,4 (16x down, a 4x4
grid), one res block per level, attention in the bottleneck, GroupNorm(8), 1024 codes of width 8, l2-normalised.
A training step is forward, L1 + L2 reconstruction + codebook + commitment loss, backward, AdamW; a decode is
codes -> images without gradients.

    python3 bench/torch/vq.py --mode train --threads 1
"""
import argparse, json, os, sys
import torch
import torch.nn.functional as F
from timing import time_steps

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'packages', 'vq-tokenizer', 'test', 'reference'))
from vq_reference import VQModel  # noqa: E402

p = argparse.ArgumentParser()
for name, default in [('batch', 8), ('size', 64), ('steps', 5), ('warmup', 2), ('threads', 1)]:
    p.add_argument('--' + name, type=int, default=default)
p.add_argument('--mode', default='train')
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
CONFIG = {'ch': 32, 'ch_mult': [1, 1, 2, 2, 4], 'res': 1, 'z': 64, 'n_e': 1024, 'e_dim': 8, 'groups': 8, 'attn': True}
model = VQModel(CONFIG)
images = torch.rand(a.batch, 3, a.size, a.size) * 2 - 1
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
grid = a.size // 16
codes = torch.randint(0, CONFIG['n_e'], (a.batch, grid, grid))


def train():
    opt.zero_grad(set_to_none=True)
    rec, _, codebook, commit, _, _ = model(images)
    loss = F.l1_loss(rec, images) + F.mse_loss(rec, images) + codebook + commit
    loss.backward()
    opt.step()
    return loss.item()


def decode():
    with torch.no_grad():
        emb = F.normalize(model.quantize.embedding.weight, p=2, dim=-1)
        z_q = emb[codes].permute(0, 3, 1, 2)
        return model.decoder(model.post_quant_conv(z_q)).sum().item()


times, cpu = time_steps(train if a.mode == 'train' else decode, a.warmup, a.steps)
times.sort()
print(json.dumps({'mode': a.mode, 'threads': a.threads, 'seconds_per_step': times[len(times) // 2], 'best_seconds': times[0],
                  'best_cpu_seconds': min(cpu), 'steps': a.steps, 'torch': torch.__version__,
                  'params': sum(p.numel() for p in model.parameters())}))
