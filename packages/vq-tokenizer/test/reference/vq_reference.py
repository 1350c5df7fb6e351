"""PyTorch reference of LlamaGen's VQ model layout (tokenizer/tokenizer_image/vq_model.py; Janus's gen_vision_model),
written from its structure for Chimera's parity test. Torch 1.13 has no safetensors library: files are encoded by hand.

  python3 vq_reference.py make DIR
      for each case writes DIR/<case>/model.safetensors (keys optionally under `gen_vision_model.`, plus unrelated
      keys a Janus checkpoint has) and DIR/reference.json: config, input images (NHWC), codes, pre-quantisation
      latents, quantized latents, reconstruction, the codebook + commitment losses, and the gradients of
      loss = mean((recon - x)^2) + codebook + commitment for a few parameters.
  python3 vq_reference.py check DIR CASE EXPORT
      loads EXPORT (Chimera's export) into a fresh reference model with strict key checking, reruns CASE's input and
      prints JSON {"max_abs_diff": ...} of the reconstruction against reference.json.
"""
import json
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

CASES = [
    {'name': 'small', 'prefix': '', 'size': [16, 16], 'ch': 8, 'ch_mult': [1, 2, 2], 'res': 1, 'z': 16, 'n_e': 32, 'e_dim': 4, 'groups': 4, 'attn': False},
    {'name': 'janus', 'prefix': 'gen_vision_model.', 'size': [16, 24], 'ch': 8, 'ch_mult': [1, 1, 2, 2], 'res': 2, 'z': 16, 'n_e': 64, 'e_dim': 8, 'groups': 4, 'attn': True},
]


def swish(x):
    return x * torch.sigmoid(x)


def norm(c, groups):
    return nn.GroupNorm(groups, c, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1 = norm(cin, groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2 = norm(cout, groups)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1, 1, 0)
        self.same = cin == cout

    def forward(self, x):
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))
        return (x if self.same else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm = norm(c, groups)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        h = self.norm(x)
        q, k, v = self.q(h), self.k(h), self.v(h)
        b, c, hh, ww = q.shape
        q = q.reshape(b, c, hh * ww).permute(0, 2, 1)
        k = k.reshape(b, c, hh * ww)
        w = torch.softmax(torch.bmm(q, k) * (c ** -0.5), dim=2)
        v = v.reshape(b, c, hh * ww)
        out = torch.bmm(v, w.permute(0, 2, 1)).reshape(b, c, hh, ww)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1), mode='constant', value=0))


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode='nearest'))


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        ch, mult, g = c['ch'], c['ch_mult'], c['groups']
        self.conv_in = nn.Conv2d(3, ch, 3, 1, 1)
        in_mult = (1,) + tuple(mult)
        self.conv_blocks = nn.ModuleList()
        for i in range(len(mult)):
            block = nn.Module()
            res, attn = nn.ModuleList(), nn.ModuleList()
            bin_, bout = ch * in_mult[i], ch * mult[i]
            for _ in range(c['res']):
                res.append(ResnetBlock(bin_, bout, g))
                bin_ = bout
                if i == len(mult) - 1 and c['attn']:
                    attn.append(AttnBlock(bin_, g))
            block.res, block.attn = res, attn
            if i != len(mult) - 1:
                block.downsample = Downsample(bin_)
            self.conv_blocks.append(block)
        mid = [ResnetBlock(bin_, bin_, g)] + ([AttnBlock(bin_, g)] if c['attn'] else []) + [ResnetBlock(bin_, bin_, g)]
        self.mid = nn.ModuleList(mid)
        self.norm_out = norm(bin_, g)
        self.conv_out = nn.Conv2d(bin_, c['z'], 3, 1, 1)
        self.levels = len(mult)

    def forward(self, x):
        h = self.conv_in(x)
        for i, block in enumerate(self.conv_blocks):
            for j in range(len(block.res)):
                h = block.res[j](h)
                if len(block.attn) > 0:
                    h = block.attn[j](h)
            if i != self.levels - 1:
                h = block.downsample(h)
        for m in self.mid:
            h = m(h)
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        ch, mult, g = c['ch'], c['ch_mult'], c['groups']
        bin_ = ch * mult[-1]
        self.conv_in = nn.Conv2d(c['z'], bin_, 3, 1, 1)
        self.mid = nn.ModuleList([ResnetBlock(bin_, bin_, g)] + ([AttnBlock(bin_, g)] if c['attn'] else []) + [ResnetBlock(bin_, bin_, g)])
        self.conv_blocks = nn.ModuleList()
        for i in range(len(mult)):
            block = nn.Module()
            res, attn = nn.ModuleList(), nn.ModuleList()
            bout = ch * mult[len(mult) - i - 1]
            for _ in range(c['res'] + 1):
                res.append(ResnetBlock(bin_, bout, g))
                bin_ = bout
                if i == 0 and c['attn']:
                    attn.append(AttnBlock(bin_, g))
            block.res, block.attn = res, attn
            if i != len(mult) - 1:
                block.upsample = Upsample(bin_)
            self.conv_blocks.append(block)
        self.norm_out = norm(bin_, g)
        self.conv_out = nn.Conv2d(bin_, 3, 3, 1, 1)
        self.levels = len(mult)

    def forward(self, z):
        h = self.conv_in(z)
        for m in self.mid:
            h = m(h)
        for i, block in enumerate(self.conv_blocks):
            for j in range(len(block.res)):
                h = block.res[j](h)
                if len(block.attn) > 0:
                    h = block.attn[j](h)
            if i != self.levels - 1:
                h = block.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))


class VectorQuantizer(nn.Module):
    def __init__(self, n_e, e_dim, beta=0.25):
        super().__init__()
        self.e_dim, self.beta = e_dim, beta
        self.embedding = nn.Embedding(n_e, e_dim)
        self.embedding.weight.data.uniform_(-1.0 / n_e, 1.0 / n_e)
        self.embedding.weight.data = F.normalize(self.embedding.weight.data, p=2, dim=-1)

    def forward(self, z):
        z = torch.einsum('b c h w -> b h w c', z).contiguous()
        z = F.normalize(z, p=2, dim=-1)
        flat = z.view(-1, self.e_dim)
        emb = F.normalize(self.embedding.weight, p=2, dim=-1)
        d = torch.sum(flat ** 2, dim=1, keepdim=True) + torch.sum(emb ** 2, dim=1) - 2 * torch.einsum('bd,dn->bn', flat, emb.t())
        idx = torch.argmin(d, dim=1)
        z_q = emb[idx].view(z.shape)
        codebook = torch.mean((z_q - z.detach()) ** 2)
        commit = self.beta * torch.mean((z_q.detach() - z) ** 2)
        z_q = z + (z_q - z).detach()
        return z_q, idx.view(z.shape[:-1]), codebook, commit, z


class VQModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.encoder = Encoder(c)
        self.decoder = Decoder(c)
        self.quantize = VectorQuantizer(c['n_e'], c['e_dim'])
        self.quant_conv = nn.Conv2d(c['z'], c['e_dim'], 1)
        self.post_quant_conv = nn.Conv2d(c['e_dim'], c['z'], 1)

    def forward(self, x):
        pre = self.quant_conv(self.encoder(x))
        z_q, idx, codebook, commit, zn = self.quantize(pre)
        rec = self.decoder(self.post_quant_conv(torch.einsum('b h w c -> b c h w', z_q)))
        return rec, idx, codebook, commit, pre, z_q


def perturb_norms(model):
    for m in model.modules():
        if isinstance(m, nn.GroupNorm):
            with torch.no_grad():
                m.weight.copy_(1 + 0.2 * torch.randn_like(m.weight))
                m.bias.copy_(0.2 * torch.randn_like(m.bias))


def encode_safetensors(tensors):
    header, chunks, offset = {'__metadata__': {'format': 'pt'}}, [], 0
    for name, t in tensors.items():
        data = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(t.shape), 'data_offsets': [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header).encode('utf-8')
    text += b' ' * ((8 - len(text) % 8) % 8)
    return struct.pack('<Q', len(text)) + text + b''.join(chunks)


def decode_safetensors(path):
    with open(path, 'rb') as f:
        raw = f.read()
    (length,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + length])
    body = raw[8 + length:]
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        start, end = info['data_offsets']
        out[name] = torch.frombuffer(bytearray(body[start:end]), dtype=torch.float32).reshape(info['shape'])
    return out


def stored(t):
    return {'shape': list(t.shape), 'data': t.detach().reshape(-1).tolist()}


def build(case):
    torch.manual_seed(0)
    model = VQModel(case)
    perturb_norms(model)
    return model


def case_input(case):
    torch.manual_seed(1)
    h, w = case['size']
    return torch.rand(2, 3, h, w) * 2 - 1


GRAD_NAMES = ['encoder.conv_in.weight', 'encoder.conv_blocks.0.res.0.norm1.weight', 'quant_conv.weight', 'quantize.embedding.weight', 'decoder.conv_out.weight', 'decoder.conv_blocks.0.res.0.conv1.bias']


def make(out_dir):
    cases = []
    for case in CASES:
        model = build(case)
        directory = os.path.join(out_dir, case['name'])
        os.makedirs(directory, exist_ok=True)
        tensors = {case['prefix'] + k: v for k, v in model.state_dict().items()}
        if case['prefix']:
            tensors['language_model.model.embed_tokens.weight'] = torch.randn(4, 4)
            tensors['gen_aligner.layers.0.weight'] = torch.randn(4, 4)
        with open(os.path.join(directory, 'model.safetensors'), 'wb') as f:
            f.write(encode_safetensors(tensors))
        x = case_input(case).requires_grad_(False)
        rec, idx, codebook, commit, pre, z_q = model(x)
        loss = torch.mean((rec - x) ** 2) + codebook + commit
        params = dict(model.named_parameters())
        grads = torch.autograd.grad(loss, [params[n] for n in GRAD_NAMES])
        nhwc = lambda t: t.permute(0, 2, 3, 1)
        cases.append({
            'name': case['name'], 'config': case,
            'input': stored(nhwc(x)), 'codes': stored(idx), 'latents': stored(nhwc(pre)), 'quantized': stored(z_q),
            'reconstruction': stored(nhwc(rec)), 'codebook_loss': codebook.item(), 'commitment_loss': commit.item(),
            'loss': loss.item(),
            'grads': {n: stored(g) for n, g in zip(GRAD_NAMES, grads)},
        })
    path = os.path.join(out_dir, 'reference.json')
    with open(path, 'w') as f:
        json.dump({'cases': cases}, f)
    print(path)


def check(out_dir, name, export_path):
    case = next(c for c in CASES if c['name'] == name)
    model = VQModel(case)
    model.load_state_dict(decode_safetensors(export_path), strict=True)
    with open(os.path.join(out_dir, 'reference.json')) as f:
        ref = next(c for c in json.load(f)['cases'] if c['name'] == name)
    rec = model(case_input(case))[0].permute(0, 2, 3, 1).reshape(-1)
    expected = torch.tensor(ref['reconstruction']['data'])
    print(json.dumps({'max_abs_diff': (rec - expected).abs().max().item()}))


if __name__ == '__main__':
    if sys.argv[1] == 'make':
        make(sys.argv[2])
    else:
        check(sys.argv[2], sys.argv[3], sys.argv[4])
