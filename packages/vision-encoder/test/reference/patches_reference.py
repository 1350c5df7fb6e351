"""Reference for the patch utilities: the rules of Qwen2-VL's smart_resize, InternVL's tile-grid choice and
pixel shuffle, Fuyu's patchify and Qwen2-VL's merge-window patch order, written from the published
processors and models (PyTorch / numpy). Reads a JSON spec (path in argv[1]), prints a JSON result."""
import json
import math
import sys

import numpy as np
import torch


def smart_resize(height, width, factor, min_pixels, max_pixels):
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return [h_bar, w_bar]


def tile_grid(width, height, image_size, min_num, max_num):
    """InternVL dynamic_preprocess's choice; returns [cols, rows]."""
    ratios = set((i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1)
                 if min_num <= i * j <= max_num)
    ratios = sorted(ratios, key=lambda r: r[0] * r[1])
    aspect = width / height
    best_diff, best = float('inf'), (1, 1)
    area = width * height
    for r in ratios:
        diff = abs(aspect - r[0] / r[1])
        if diff < best_diff:
            best_diff, best = diff, r
        elif diff == best_diff and area > 0.5 * image_size * image_size * r[0] * r[1]:
            best = r
    return list(best)


def pixel_shuffle(x, scale, version):
    """InternVL's pixel_shuffle on [n, rows, cols, c] (the model reshapes ViT output to [n, h, w, c])."""
    n, w, h, c = x.size()
    x = x.view(n, w, int(h * scale), int(c / scale))
    x = x.permute(0, 2, 1, 3).contiguous()
    x = x.view(n, int(h * scale), int(w * scale), int(c / (scale * scale)))
    if version != 'v1':
        x = x.permute(0, 2, 1, 3).contiguous()
    return x


def fuyu_patchify(image, ph, pw):
    """Fuyu's patchify_image on [batch, channels, height, width] -> [batch, patches, c*ph*pw]."""
    b, c, _, _ = image.shape
    patches = image.unfold(2, ph, ph).unfold(3, pw, pw)
    patches = patches.contiguous().view(b, c, -1, ph, pw)
    return patches.permute(0, 2, 3, 4, 1).reshape(b, -1, c * ph * pw)


def qwen_merge(features, m):
    """Per-patch features [gh, gw, d] put in Qwen2-VL's processor order (merge windows contiguous, as its
    9-axis transpose does), then the merger's view(-1, m*m*d)."""
    gh, gw, d = features.shape
    ordered = features.reshape(gh // m, m, gw // m, m, d).transpose(0, 2, 1, 3, 4).reshape(gh * gw, d)
    return ordered.reshape(-1, m * m * d)


def main():
    spec = json.load(open(sys.argv[1]))
    out = {}
    out['smart_resize'] = [smart_resize(*case) for case in spec.get('smart_resize', [])]
    out['tile_grid'] = [tile_grid(*case) for case in spec.get('tile_grid', [])]
    out['pixel_shuffle'] = []
    for case in spec.get('pixel_shuffle', []):
        x = torch.tensor(case['data'], dtype=torch.float32).view(*case['shape'])
        out['pixel_shuffle'].append(pixel_shuffle(x, case['scale'], case['version']).flatten().tolist())
    out['fuyu_patchify'] = []
    for case in spec.get('fuyu_patchify', []):
        hwc = torch.tensor(case['data'], dtype=torch.float32).view(*case['shape'])
        chw = hwc.permute(2, 0, 1).unsqueeze(0)
        out['fuyu_patchify'].append(fuyu_patchify(chw, case['patch'], case['patch']).flatten().tolist())
    out['qwen_merge'] = []
    for case in spec.get('qwen_merge', []):
        f = np.array(case['data'], dtype=np.float32).reshape(case['shape'])
        out['qwen_merge'].append(qwen_merge(f, case['merge']).flatten().tolist())
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    main()
