"""PyTorch reference for Chimera's AdamW: runs torch.optim.AdamW on given parameters and per-step gradients.

Usage: adamw_reference.py CASE.json  ->  prints JSON {"steps": [{name: flat values after step}, ...]}
CASE: {"params": {name: {"shape": [...], "values": [...]}}, "decay": {name: bool},
       "grads": [{name: [...] or null}, ...], "lr": [per step], "betas": [b1, b2], "eps": e, "weight_decay": wd}
A null gradient means the parameter has no grad on that step (PyTorch skips it, step count included).
"""
import json
import sys

import torch

case = json.load(open(sys.argv[1]))
params = {
    name: torch.tensor(p["values"], dtype=torch.float32).reshape(p["shape"]).requires_grad_(True)
    for name, p in case["params"].items()
}
decayed = [p for name, p in params.items() if case["decay"][name]]
plain = [p for name, p in params.items() if not case["decay"][name]]
groups = []
if decayed:
    groups.append({"params": decayed, "weight_decay": case["weight_decay"]})
if plain:
    groups.append({"params": plain, "weight_decay": 0.0})
opt = torch.optim.AdamW(groups, lr=case["lr"][0], betas=tuple(case["betas"]), eps=case["eps"], foreach=False)

out = []
for step, grads in enumerate(case["grads"]):
    for group in opt.param_groups:
        group["lr"] = case["lr"][step]
    for name, p in params.items():
        g = grads.get(name)
        p.grad = None if g is None else torch.tensor(g, dtype=torch.float32).reshape(p.shape)
    opt.step()
    out.append({name: p.detach().reshape(-1).tolist() for name, p in params.items()})
print(json.dumps({"steps": out}))
