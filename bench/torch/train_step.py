"""Seconds per training step (forward, cross-entropy, backward, AdamW) of the Llama in llama.py, as JSON.

    python3 bench/torch/train_step.py --hidden 256 --intermediate 688 --threads 1
"""
import argparse, json
import torch
import torch.nn.functional as F
from timing import time_steps
from llama import Llama, adamw

p = argparse.ArgumentParser()
for name, default in [('vocab', 512), ('hidden', 256), ('layers', 4), ('heads', 4), ('kv-heads', 0), ('intermediate', 688),
                      ('batch', 8), ('seq', 128), ('steps', 5), ('warmup', 2), ('threads', 1)]:
    p.add_argument('--' + name, type=int, default=default)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
model = Llama(a.vocab, a.hidden, a.layers, a.heads, a.kv_heads or a.heads, a.intermediate)
opt = adamw(model)
ids = torch.randint(0, a.vocab, (a.batch, a.seq))
targets = torch.randint(0, a.vocab, (a.batch, a.seq))


def step():
    opt.zero_grad(set_to_none=True)
    logits = model(ids)
    loss = F.cross_entropy(logits.reshape(-1, a.vocab), targets.reshape(-1))
    loss.backward()
    opt.step()
    return loss.item()


times, cpu = time_steps(step, a.warmup, a.steps)
times.sort()
print(json.dumps({'threads': a.threads, 'seconds_per_step': times[len(times) // 2], 'best_seconds': times[0],
                  'best_cpu_seconds': min(cpu), 'steps': a.steps, 'torch': torch.__version__, 'tokens_per_step': a.batch * a.seq}))
