"""PyTorch reference for Chimera's Conv1d, ConvTranspose2d, GroupNorm, Upsample and average pooling.

Usage: conv_layers_reference.py CASES_JSON OUT_JSON

Each case names a layer and its options; this script builds the PyTorch module (nn.Conv1d, nn.ConvTranspose2d,
nn.GroupNorm, nn.Upsample, nn.AvgPool1d/2d), draws float32 inputs and parameters, runs it in float64, and records
the output and the gradients of sum(output * dy) with respect to the input and every parameter. Everything is
stored in PyTorch's layouts (channels first, weights [out, in, k], [in, out, kH, kW]); the test converts.
"""
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


def tensor_json(t):
    t = t.detach().to(torch.float64)
    return {"shape": list(t.shape), "data": t.reshape(-1).tolist()}


def randn(*shape):
    # Drawn in float32 so both sides start from exactly the same numbers.
    return torch.randn(*shape, dtype=torch.float32).to(torch.float64)


class Padded(nn.Module):
    """Asymmetric zero padding [left, right] before a valid convolution (nn.Conv1d pads symmetrically only)."""

    def __init__(self, pad, conv):
        super().__init__()
        self.pad = pad
        self.conv = conv

    def forward(self, x):
        return self.conv(F.pad(x, (self.pad[0], self.pad[1])))


def build(case):
    layer = case["layer"]
    if layer == "conv1d":
        padding = case.get("padding", 0)
        conv = nn.Conv1d(
            case["in"],
            case["out"],
            case["k"],
            stride=case.get("stride", 1),
            padding=0 if isinstance(padding, list) else padding,
            dilation=case.get("dilation", 1),
            groups=case.get("groups", 1),
            bias=case.get("bias", True),
        )
        module = Padded(padding, conv) if isinstance(padding, list) else conv
        return module, conv, [case["B"], case["in"], case["T"]]
    if layer == "convTranspose2d":
        conv = nn.ConvTranspose2d(
            case["in"],
            case["out"],
            tuple(case["k"]),
            stride=tuple(case.get("stride", [1, 1])),
            padding=tuple(case.get("padding", [0, 0])),
            output_padding=tuple(case.get("outputPadding", [0, 0])),
            dilation=tuple(case.get("dilation", [1, 1])),
            bias=case.get("bias", True),
        )
        return conv, conv, [case["B"], case["in"], case["H"], case["W"]]
    if layer == "groupNorm":
        norm = nn.GroupNorm(case["groups"], case["channels"], eps=case.get("eps", 1e-5), affine=case.get("affine", True))
        if norm.affine:
            # Not ones and zeros, so the test sees the scale and shift act.
            with torch.no_grad():
                norm.weight.copy_(torch.randn(case["channels"]))
                norm.bias.copy_(torch.randn(case["channels"]))
        return norm, norm, case["shape"]
    if layer == "upsample":
        kwargs = {"mode": case["mode"]}
        if "scaleFactor" in case:
            sf = case["scaleFactor"]
            kwargs["scale_factor"] = tuple(sf) if isinstance(sf, list) else sf
        else:
            kwargs["size"] = tuple(case["size"])
        if "alignCorners" in case:
            kwargs["align_corners"] = case["alignCorners"]
        return nn.Upsample(**kwargs), None, [case["B"], case["C"], case["H"], case["W"]]
    if layer == "avgPool2d":
        pool = nn.AvgPool2d(
            tuple(case["k"]),
            stride=tuple(case["stride"]) if "stride" in case else None,
            padding=tuple(case.get("padding", [0, 0])),
            ceil_mode=case.get("ceilMode", False),
            count_include_pad=case.get("countIncludePad", True),
            divisor_override=case.get("divisorOverride"),
        )
        return pool, None, [case["B"], case["C"], case["H"], case["W"]]
    if layer == "avgPool1d":
        pool = nn.AvgPool1d(
            case["k"],
            stride=case.get("stride"),
            padding=case.get("padding", 0),
            ceil_mode=case.get("ceilMode", False),
            count_include_pad=case.get("countIncludePad", True),
        )
        return pool, None, [case["B"], case["C"], case["T"]]
    raise ValueError(f"unknown layer {layer}")


def run(case, index):
    torch.manual_seed(1000 + index)
    module, params_owner, shape = build(case)
    module = module.to(torch.float64)
    params = {}
    if params_owner is not None:
        for name, p in params_owner.named_parameters():
            with torch.no_grad():
                p.copy_(p.to(torch.float32).to(torch.float64))
            params[name] = p
    x = randn(*shape) * case.get("scale", 1.0) + case.get("offset", 0.0)
    x = x.to(torch.float32).to(torch.float64).requires_grad_(True)
    out = module(x)
    dy = randn(*out.shape)
    (out * dy).sum().backward()
    return {
        "name": case["name"],
        "x": tensor_json(x),
        "params": {name: tensor_json(p) for name, p in params.items()},
        "out": tensor_json(out),
        "dy": tensor_json(dy),
        "grads": {"x": tensor_json(x.grad), **{name: tensor_json(p.grad) for name, p in params.items()}},
    }


def main():
    cases_path, out_path = sys.argv[1], sys.argv[2]
    with open(cases_path) as f:
        cases = json.load(f)
    results = [run(case, i) for i, case in enumerate(cases)]
    with open(out_path, "w") as f:
        json.dump({"torch": torch.__version__, "cases": results}, f)
    print(out_path)


if __name__ == "__main__":
    main()
