"""Greedy generation with a key/value cache (preallocated, written in place) of the Llama in llama.py, batch 1,
as JSON: for each prompt length and number of new tokens, new tokens per second over the whole call (prefill
included) and over the decode steps only. `--tied 1` shares the embedding table with the LM head (as HF's
tie_word_embeddings does: one Parameter for both).

    python3 bench/torch/generate.py --cases 64:32,256:16,1024:6 --threads 1
"""
import argparse, json, time
import torch
from llama import Llama

p = argparse.ArgumentParser()
for name, default in [('vocab', 512), ('hidden', 256), ('layers', 4), ('heads', 4), ('kv-heads', 2), ('intermediate', 688),
                      ('threads', 1), ('repeats', 2)]:
    p.add_argument('--' + name, type=int, default=default)
p.add_argument('--tied', type=int, default=0, help='1: the LM head is the embedding table')
p.add_argument('--eps', type=float, default=1e-6, help='RMSNorm epsilon')
p.add_argument('--cases', default='64:32', help='context:new_tokens pairs, comma-separated')
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
model = Llama(a.vocab, a.hidden, a.layers, a.heads, a.kv_heads, a.intermediate, eps=a.eps).eval()
if a.tied:
    model.lm_head.weight = model.embed_tokens.weight  # both [vocab, hidden]


@torch.no_grad()
def generate(prompt, new_tokens):
    caches = model.new_caches(1, prompt.shape[1] + new_tokens)
    start = time.perf_counter()
    token = model(prompt, caches, last_only=True)[:, -1].argmax(-1, keepdim=True)
    first = time.perf_counter()
    for _ in range(new_tokens - 1):
        token = model(token, caches, last_only=True)[:, -1].argmax(-1, keepdim=True)
    end = time.perf_counter()
    return end - start, end - first


generate(torch.tensor([list(range(16))]), 4)  # warm-up
results = []
for case in a.cases.split(','):
    context, new_tokens = (int(v) for v in case.split(':'))
    prompt = torch.tensor([[(i * 7919 + 13) % a.vocab for i in range(context)]])
    runs = [generate(prompt, new_tokens) for _ in range(a.repeats)]
    total = min(r[0] for r in runs)
    decode = min(r[1] for r in runs)
    results.append({'context': context, 'new_tokens': new_tokens, 'tokens_per_second': new_tokens / total,
                    'decode_tokens_per_second': (new_tokens - 1) / decode if new_tokens > 1 else None})
print(json.dumps({'threads': a.threads, 'tied': bool(a.tied), 'cases': results}))
