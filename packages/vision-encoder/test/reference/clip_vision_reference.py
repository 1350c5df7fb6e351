"""PyTorch reference for test/vit-parity.test.ts: random-init CLIP and SigLIP vision towers written from the math
with HF's module structure and parameter names (transformers is not needed), saved in HF layout.

  python3 clip_vision_reference.py DIR

writes
  DIR/clip/     model.safetensors + config.json: a full CLIPModel checkpoint (vision tower under `vision_model.`,
                plus text-tower and projection tensors the loader must ignore, and the persisted position_ids)
  DIR/llava/    the same vision weights under `vision_tower.vision_model.` in a two-shard checkpoint with an
                index, projector and language-model tensors, and a LLaVA config whose vision_config leaves
                hidden_act / layer_norm_eps to HF's defaults
  DIR/siglip/   model.safetensors + config.json: a SiglipModel checkpoint (patch bias, no CLS, gelu tanh, the
                attention-pooling head the loader must skip)
  DIR/reference.json   pixels (NHWC) and hidden states per case
and prints the path of reference.json. Safetensors are encoded by hand (torch 1.13 has no safetensors library):
an 8-byte little-endian header length, the JSON header, then the raw little-endian F32 (I64 for position_ids) data. Linear weights are
stored [out, in] and conv weights [out, in, kh, kw], as PyTorch holds them.
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(((2.0 / math.pi) ** 0.5) * (x + 0.044715 * x ** 3)))


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x):
        batch, length, dim = x.shape
        head_dim = dim // self.heads

        def split(t):
            return t.view(batch, length, self.heads, head_dim).transpose(1, 2)  # (B, h, T, dh)

        q = split(self.q_proj(x)) * head_dim ** -0.5
        k = split(self.k_proj(x))
        v = split(self.v_proj(x))
        probs = torch.softmax(q @ k.transpose(-1, -2), dim=-1)  # (B, h, T, T), no mask: bidirectional
        mixed = (probs @ v).transpose(1, 2).reshape(batch, length, dim)
        return self.out_proj(mixed)


class MLP(nn.Module):
    def __init__(self, dim, hidden, act):
        super().__init__()
        self.act = act
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class EncoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        dim, eps = cfg['hidden_size'], cfg['eps']
        self.layer_norm1 = nn.LayerNorm(dim, eps=eps)
        self.self_attn = Attention(dim, cfg['heads'])
        self.layer_norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, cfg['intermediate_size'], cfg['act'])

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.ModuleList([EncoderLayer(cfg) for _ in range(cfg['layers'])])


class Embeddings(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        dim, patch = cfg['hidden_size'], cfg['patch_size']
        self.cls = cfg['cls']
        self.patch = patch
        self.grid = cfg['image_size'] // patch
        if self.cls:
            self.class_embedding = nn.Parameter(torch.randn(dim) * dim ** -0.5)
        self.patch_embedding = nn.Conv2d(3, dim, kernel_size=patch, stride=patch, bias=cfg['patch_bias'])
        positions = self.grid ** 2 + (1 if self.cls else 0)
        self.position_embedding = nn.Embedding(positions, dim)  # N(0, 1) init: interpolation errors show
        self.register_buffer('position_ids', torch.arange(positions).unsqueeze(0), persistent=True)

    def positions(self, rows, cols):
        """HF's interpolate_pos_encoding: bicubic resize of the patch grid, CLS position kept."""
        weight = self.position_embedding.weight.unsqueeze(0)  # (1, P, D)
        if (rows, cols) == (self.grid, self.grid):
            return weight
        first = 1 if self.cls else 0
        cls_pos, patch_pos = weight[:, :first], weight[:, first:]
        dim = weight.shape[-1]
        grid = patch_pos.reshape(1, self.grid, self.grid, dim).permute(0, 3, 1, 2)  # (1, D, g, g)
        grid = F.interpolate(grid, size=(rows, cols), mode='bicubic', align_corners=False)
        patch_pos = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, dim)
        return torch.cat([cls_pos, patch_pos], dim=1)

    def forward(self, pixels):  # (B, 3, H, W)
        batch, _, height, width = pixels.shape
        x = self.patch_embedding(pixels).flatten(2).transpose(1, 2)  # (B, N, D), row-major patches
        if self.cls:
            x = torch.cat([self.class_embedding.expand(batch, 1, -1), x], dim=1)
        return x + self.positions(height // self.patch, width // self.patch)


class VisionTransformer(nn.Module):
    """HF CLIPVisionTransformer / SiglipVisionTransformer."""

    def __init__(self, cfg):
        super().__init__()
        self.family = cfg['family']
        self.embeddings = Embeddings(cfg)
        if self.family == 'clip':
            self.pre_layrnorm = nn.LayerNorm(cfg['hidden_size'], eps=cfg['eps'])
        self.encoder = Encoder(cfg)
        self.post_layernorm = nn.LayerNorm(cfg['hidden_size'], eps=cfg['eps'])

    def forward(self, pixels):
        x = self.embeddings(pixels)
        if self.family == 'clip':
            x = self.pre_layrnorm(x)
        states = [x]
        for layer in self.encoder.layers:
            x = layer(x)
            states.append(x)
        if self.family == 'clip':
            return {'hidden_states': states, 'last_hidden_state': x, 'pooler_output': self.post_layernorm(x[:, 0, :])}
        return {'hidden_states': states, 'last_hidden_state': self.post_layernorm(x)}


class VisionModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.vision_model = VisionTransformer(cfg)


def randomize_norms(module):
    """Non-trivial LayerNorm scales and shifts, so a missed or misnamed norm shows."""
    for m in module.modules():
        if isinstance(m, nn.LayerNorm):
            with torch.no_grad():
                m.weight.copy_(1 + 0.2 * torch.randn_like(m.weight))
                m.bias.copy_(0.2 * torch.randn_like(m.bias))


def encode_safetensors(tensors):
    header, chunks, offset = {'__metadata__': {'format': 'pt'}}, [], 0
    for name, t in tensors.items():
        dtype = 'I64' if t.dtype == torch.int64 else 'F32'  # position_ids is an int64 buffer
        data = t.detach().to(torch.int64 if dtype == 'I64' else torch.float32).contiguous().numpy().tobytes()
        header[name] = {'dtype': dtype, 'shape': list(t.shape), 'data_offsets': [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header).encode('utf-8')
    text += b' ' * ((8 - len(text) % 8) % 8)
    return struct.pack('<Q', len(text)) + text + b''.join(chunks)


def write_file(path, tensors):
    with open(path, 'wb') as f:
        f.write(encode_safetensors(tensors))


def write_json(path, value):
    with open(path, 'w') as f:
        json.dump(value, f)


def stored(t):
    return {'shape': list(t.shape), 'data': t.detach().reshape(-1).tolist()}


def run_case(name, directory, model, pixels, state_indices):
    """pixels (B, 3, H, W); states kept by HF hidden_states index (negative from the end)."""
    with torch.no_grad():
        out = model.vision_model(pixels)
    states = out['hidden_states']
    case = {
        'name': name,
        'dir': directory,
        'pixels': stored(pixels.permute(0, 2, 3, 1)),  # NHWC for TensorFlow.js
        'states': {str(i): stored(states[i]) for i in state_indices},
        'last_hidden_state': stored(out['last_hidden_state']),
    }
    if 'pooler_output' in out:
        case['pooler_output'] = stored(out['pooler_output'])
    return case


def main(out_dir):
    torch.manual_seed(0)
    small = {'hidden_size': 32, 'intermediate_size': 64, 'layers': 4, 'heads': 4, 'image_size': 32, 'patch_size': 8}
    clip_cfg = dict(small, family='clip', cls=True, patch_bias=False, eps=1e-5, act=quick_gelu)
    siglip_cfg = dict(small, family='siglip', cls=False, patch_bias=True, eps=1e-6, act=gelu_tanh)
    hf_vision = {
        'hidden_size': 32, 'intermediate_size': 64, 'num_hidden_layers': 4, 'num_attention_heads': 4,
        'image_size': 32, 'patch_size': 8, 'num_channels': 3,
    }

    clip = VisionModel(clip_cfg)
    randomize_norms(clip)
    clip_state = dict(clip.state_dict())
    os.makedirs(os.path.join(out_dir, 'clip'), exist_ok=True)
    extras = {
        'text_model.embeddings.token_embedding.weight': torch.randn(10, 16),
        'text_model.final_layer_norm.weight': torch.ones(16),
        'visual_projection.weight': torch.randn(16, 32),
        'text_projection.weight': torch.randn(16, 16),
        'logit_scale': torch.tensor(2.6592),
    }
    write_file(os.path.join(out_dir, 'clip', 'model.safetensors'), {**clip_state, **extras})
    write_json(os.path.join(out_dir, 'clip', 'config.json'), {
        'architectures': ['CLIPModel'], 'model_type': 'clip', 'projection_dim': 16,
        'text_config': {'model_type': 'clip_text_model', 'hidden_size': 16, 'vocab_size': 10},
        'vision_config': dict(hf_vision, model_type='clip_vision_model', hidden_act='quick_gelu', layer_norm_eps=1e-5),
    })

    # LLaVA: the same tower under vision_tower., two shards and an index.
    llava_dir = os.path.join(out_dir, 'llava')
    os.makedirs(llava_dir, exist_ok=True)
    tower = {'vision_tower.' + k: v for k, v in clip_state.items() if k != 'vision_model.embeddings.position_ids'}
    rest = {
        'multi_modal_projector.linear_1.weight': torch.randn(24, 32),
        'multi_modal_projector.linear_1.bias': torch.randn(24),
        'language_model.model.embed_tokens.weight': torch.randn(12, 24),
        'language_model.lm_head.weight': torch.randn(12, 24),
    }
    shards = {'model-00001-of-00002.safetensors': rest, 'model-00002-of-00002.safetensors': tower}
    weight_map = {}
    for file, tensors in shards.items():
        write_file(os.path.join(llava_dir, file), tensors)
        weight_map.update({k: file for k in tensors})
    write_json(os.path.join(llava_dir, 'model.safetensors.index.json'), {'metadata': {}, 'weight_map': weight_map})
    write_json(os.path.join(llava_dir, 'config.json'), {
        'architectures': ['LlavaForConditionalGeneration'], 'model_type': 'llava',
        'vision_feature_layer': -2, 'vision_feature_select_strategy': 'default',
        'text_config': {'model_type': 'llama', 'hidden_size': 24},
        'vision_config': dict(hf_vision, model_type='clip_vision_model'),  # hidden_act, eps: HF defaults
    })

    siglip = VisionModel(siglip_cfg)
    randomize_norms(siglip)
    os.makedirs(os.path.join(out_dir, 'siglip'), exist_ok=True)
    head = {
        'vision_model.head.probe': torch.randn(1, 1, 32),
        'vision_model.head.attention.in_proj_weight': torch.randn(96, 32),
        'vision_model.head.attention.in_proj_bias': torch.randn(96),
        'vision_model.head.attention.out_proj.weight': torch.randn(32, 32),
        'vision_model.head.attention.out_proj.bias': torch.randn(32),
        'vision_model.head.layernorm.weight': torch.ones(32),
        'vision_model.head.layernorm.bias': torch.zeros(32),
        'vision_model.head.mlp.fc1.weight': torch.randn(64, 32),
        'vision_model.head.mlp.fc1.bias': torch.randn(64),
        'vision_model.head.mlp.fc2.weight': torch.randn(32, 64),
        'vision_model.head.mlp.fc2.bias': torch.randn(32),
        'text_model.embeddings.token_embedding.weight': torch.randn(10, 16),
        'logit_scale': torch.tensor([2.3]),
        'logit_bias': torch.tensor([-10.0]),
    }
    write_file(os.path.join(out_dir, 'siglip', 'model.safetensors'), {**siglip.state_dict(), **head})
    write_json(os.path.join(out_dir, 'siglip', 'config.json'), {
        'architectures': ['SiglipModel'], 'model_type': 'siglip',
        'text_config': {'hidden_size': 16, 'vocab_size': 10},
        'vision_config': dict(hf_vision, layer_norm_eps=1e-6),  # no model_type here: the top one says siglip
    })

    indices = [0, 2, -2, -1]
    cases = [
        run_case('clip 32x32 (trained size)', 'clip', clip, torch.randn(2, 3, 32, 32), indices),
        run_case('clip 48x40 (interpolated positions)', 'clip', clip, torch.randn(2, 3, 48, 40), indices),
        run_case('siglip 32x32 (trained size)', 'siglip', siglip, torch.randn(2, 3, 32, 32), indices),
        run_case('siglip 24x40 (interpolated positions, rows shrink)', 'siglip', siglip, torch.randn(1, 3, 24, 40), indices),
    ]
    path = os.path.join(out_dir, 'reference.json')
    write_json(path, {'torch': torch.__version__, 'num_layers': small['layers'], 'cases': cases})
    print(path)


if __name__ == '__main__':
    main(sys.argv[1])
