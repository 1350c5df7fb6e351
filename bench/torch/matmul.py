"""GFLOP/s of plain 2-D float32 matmuls [m, k] @ [k, n] (OpenBLAS through PyTorch), as JSON.

    python3 bench/torch/matmul.py --threads 1 --shapes 512x512x512,1024x256x688
"""
import argparse, json, time
import torch

p = argparse.ArgumentParser()
p.add_argument('--threads', type=int, default=1)
p.add_argument('--shapes', default='512x512x512')
p.add_argument('--reps', type=int, default=10)
a = p.parse_args()
torch.set_num_threads(a.threads)
rates = {}
for shape in a.shapes.split(','):
    m, k, n = (int(v) for v in shape.split('x'))
    x, w = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        x @ w
    best = float('inf')
    for _ in range(a.reps):
        t0 = time.perf_counter()
        x @ w
        best = min(best, time.perf_counter() - t0)
    rates[shape] = 2 * m * k * n / best / 1e9
print(json.dumps({'threads': a.threads, 'gflops': rates}))
