"""PyTorch reference for test/llava-export.test.ts: HF's LlavaForConditionalGeneration forward written in plain torch
(transformers is not installed), reading a folder as transformers would: config.json (model_type llava) and the
safetensors under HF's names, in the key layout of transformers < 4.52 or >= 4.52.

  python3 llava_reference.py JOBS_JSON

JOBS_JSON lists {dir, inputs, output} (one torch start for several folders): `dir` is the HF folder, `inputs` a JSON
file {input_ids [B, T], attention_mask [B, T], pixels {shape [N, H, W, 3], data}} (NHWC, one image per run of
image_token_index tokens, in order), and `output` gets {layout, logits [B, T, V]}.

The parts are the existing references, not copies:
  vision tower  ../../../vision-encoder/test/reference/clip_vision_reference.py (HF CLIP/SigLIP module structure,
                hidden_states[vision_feature_layer], CLS dropped for 'default')
  projector     linear_1, GELU (exact, ACT2FN['gelu']), linear_2, as LlavaMultiModalProjector
  language      ../../../llm/test/reference/llama_reference.py's forward, fed inputs_embeds in which the image
                features replace the image tokens' embeddings in order (masked_scatter)
Every tensor name in the file must be one this config implies and vice versa, so a misnamed key fails here.
Computed in float64.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', '..', 'vision-encoder', 'test', 'reference'))
sys.path.insert(0, os.path.join(HERE, '..', '..', '..', 'llm', 'test', 'reference'))
import clip_vision_reference as clip  # noqa: E402
import llama_reference as llama  # noqa: E402

DT = torch.float64

# The two key layouts: (vision tower, projector, language model body, LM head).
LAYOUTS = {
    'transformers<4.52': ('vision_tower.', 'multi_modal_projector.', 'language_model.model.', 'language_model.lm_head.'),
    'transformers>=4.52': ('model.vision_tower.', 'model.multi_modal_projector.', 'model.language_model.', 'lm_head.'),
}

ACTIVATIONS = {'quick_gelu': clip.quick_gelu, 'gelu_pytorch_tanh': clip.gelu_tanh, 'gelu': F.gelu}


def read_tensors(directory):
    index = os.path.join(directory, 'model.safetensors.index.json')
    if not os.path.exists(index):
        return llama.decode_safetensors(os.path.join(directory, 'model.safetensors'))
    with open(index) as f:
        files = sorted(set(json.load(f)['weight_map'].values()))
    out = {}
    for file in files:
        out.update(llama.decode_safetensors(os.path.join(directory, file)))
    return out


def detect_layout(names):
    found = [k for k, (_, projector, _, _) in LAYOUTS.items() if any(n.startswith(projector) for n in names)]
    if len(found) != 1:
        raise SystemExit(f'cannot tell the key layout from {sorted(names)[:5]}')
    return found[0]


def vision_tower(vcfg):
    """clip_vision_reference's VisionModel for an HF vision_config (CLIP or SigLIP)."""
    family = 'siglip' if vcfg.get('model_type') == 'siglip_vision_model' else 'clip'
    cfg = {
        'family': family, 'cls': family == 'clip', 'patch_bias': family == 'siglip',
        'hidden_size': vcfg['hidden_size'], 'intermediate_size': vcfg['intermediate_size'],
        'layers': vcfg['num_hidden_layers'], 'heads': vcfg['num_attention_heads'],
        'image_size': vcfg['image_size'], 'patch_size': vcfg['patch_size'],
        'eps': vcfg['layer_norm_eps'], 'act': ACTIVATIONS[vcfg['hidden_act']],
    }
    return clip.VisionModel(cfg).to(DT)


def split(tensors, prefix):
    return {n[len(prefix):]: t for n, t in tensors.items() if n.startswith(prefix)}


def run(directory, inputs_path, output_path):
    with open(os.path.join(directory, 'config.json')) as f:
        config = json.load(f)
    assert config['model_type'] == 'llava', config['model_type']
    vcfg, tcfg = config['vision_config'], config['text_config']
    tensors = {n: t.to(DT) for n, t in read_tensors(directory).items()}
    layout = detect_layout(tensors)
    vision_prefix, projector_prefix, body_prefix, head_prefix = LAYOUTS[layout]

    # Vision tower: strict names (position_ids is a buffer HF no longer saves).
    tower = vision_tower(vcfg)
    vision = split(tensors, vision_prefix)
    result = tower.load_state_dict(vision, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith('position_ids')]
    if missing or result.unexpected_keys:
        raise SystemExit(f'vision tower: missing {missing}, unexpected {result.unexpected_keys}')

    projector = split(tensors, projector_prefix)
    projector_keys = {'linear_1.weight', 'linear_2.weight'}
    if config.get('multimodal_projector_bias', True):
        projector_keys |= {'linear_1.bias', 'linear_2.bias'}
    if set(projector) != projector_keys:
        raise SystemExit(f'projector: has {sorted(projector)}, expected {sorted(projector_keys)}')

    # Language model under llama_reference's names (model.*, lm_head.weight), checked against its expected keys.
    language = {'model.' + k: t for k, t in split(tensors, body_prefix).items()}
    language.update({'lm_head.' + k: t for k, t in split(tensors, head_prefix).items()})
    expected = llama.expected_keys(tcfg)
    wrong = sorted(n for n in expected if n in language and list(language[n].shape) != expected[n])
    if set(language) != set(expected) or wrong:
        raise SystemExit(
            f'language model: missing {sorted(set(expected) - set(language))}, '
            f'unexpected {sorted(set(language) - set(expected))}, wrong shape {wrong}'
        )
    accounted = len(vision) + len(projector) + len(language)
    if accounted != len(tensors):
        raise SystemExit(f'{len(tensors) - accounted} tensors under no LLaVA prefix')

    with open(inputs_path) as f:
        inputs = json.load(f)
    input_ids = torch.tensor(inputs['input_ids'], dtype=torch.long)
    attention_mask = torch.tensor(inputs['attention_mask'], dtype=torch.long)
    pixels = torch.tensor(inputs['pixels']['data'], dtype=DT).reshape(inputs['pixels']['shape']).permute(0, 3, 1, 2)

    with torch.no_grad():
        # LlavaModel.get_image_features
        states = tower.vision_model(pixels)['hidden_states']
        layers = config.get('vision_feature_layer', -2)
        layers = [layers] if isinstance(layers, int) else layers
        strategy = config.get('vision_feature_select_strategy', 'default')
        chosen = [states[i][:, 1:] if strategy == 'default' else states[i] for i in layers]
        features = torch.cat(chosen, dim=-1)  # [N, tokens, D_vision * len(layers)]
        act = ACTIVATIONS[config.get('projector_hidden_act', 'gelu')]
        h = F.linear(features, projector['linear_1.weight'], projector.get('linear_1.bias'))
        image_features = F.linear(act(h), projector['linear_2.weight'], projector.get('linear_2.bias'))

        # The splice: image features replace the image tokens' embeddings, in order.
        embeds = language['model.embed_tokens.weight'][input_ids]
        image_mask = input_ids == config['image_token_index']
        flat = image_features.reshape(-1, image_features.shape[-1])
        if int(image_mask.sum()) != flat.shape[0]:
            raise SystemExit(f'Image features and image tokens do not match: tokens {int(image_mask.sum())}, features {flat.shape[0]}')
        embeds[image_mask] = flat
        logits = llama.forward(tcfg, language, input_ids, attention_mask, inputs_embeds=embeds)

    with open(output_path, 'w') as f:
        json.dump({'layout': layout, 'torch': torch.__version__, 'logits': logits.tolist()}, f)


if __name__ == '__main__':
    if len(sys.argv) != 2:
        raise SystemExit('usage: llava_reference.py JOBS_JSON')
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    for job in jobs:
        run(job['dir'], job['inputs'], job['output'])
    print(len(jobs))
