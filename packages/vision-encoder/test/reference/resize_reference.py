"""Reference resizes for test/image-resize.test.ts.

Reads a JSON list of cases {id, width, height, outWidth, outHeight, filter, data: base64 RGB bytes} from argv[1]
and writes, per case, PIL's Image.resize (the HF processors' resize) and torch's
interpolate(align_corners=False, antialias=True) rounded to bytes, both base64, to argv[2]. PIL is optional
(null when missing); torch is required.
"""
import base64
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

try:
    from PIL import Image
except ImportError:  # PIL is optional; torch alone still checks the kernels
    Image = None


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    out = []
    for case in cases:
        w, h, ow, oh = case["width"], case["height"], case["outWidth"], case["outHeight"]
        pixels = np.frombuffer(base64.b64decode(case["data"]), dtype=np.uint8).reshape(h, w, 3)
        x = torch.from_numpy(pixels.astype(np.float64)).permute(2, 0, 1)[None]
        y = F.interpolate(x, size=(oh, ow), mode=case["filter"], align_corners=False, antialias=True)
        y = y[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
        result = {"id": case["id"], "torch": base64.b64encode(np.ascontiguousarray(y).tobytes()).decode()}
        if Image is not None:
            resample = Image.BICUBIC if case["filter"] == "bicubic" else Image.BILINEAR
            resized = Image.fromarray(pixels, "RGB").resize((ow, oh), resample=resample)
            result["pil"] = base64.b64encode(np.asarray(resized).tobytes()).decode()
        else:
            result["pil"] = None
        out.append(result)
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
