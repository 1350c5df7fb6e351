"""PyTorch references for the audio frontend parity tests (audio-resample.test.ts, frontend-logmel.test.ts).

  audio_frontend_reference.py resample DIR   test signals and torchaudio.functional.resample outputs
  audio_frontend_reference.py logmel DIR     test clips and Whisper log-mel features

The log-mel reference is HF WhisperFeatureExtractor._torch_extract_fbank_features written out with torch.stft
(periodic Hann, center=True, reflect) and torchaudio's melscale_fbanks(norm='slaney', mel_scale='slaney'),
per-clip maximum. The bank is built in float64 (then used as float32), as librosa builds Whisper's shipped
filters: torchaudio's default float32 arithmetic moves edge weights by ~1% (see src/frontend/mel.ts). Every array is written as raw little-endian float32 with a JSON manifest.
"""
import json
import os
import sys

import numpy as np
import torch
import torchaudio

torch.set_num_threads(1)
SR = 16000


def save(dirname, name, array):
    np.ascontiguousarray(array, dtype="<f4").tofile(os.path.join(dirname, name + ".f32"))


def signal(rate, seconds, seed):
    rng = np.random.default_rng(seed)
    n = int(round(rate * seconds))
    t = np.arange(n) / rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * (150 + 3000 * t / max(seconds, 1e-9)) * t)
    x += 0.1 * np.sin(2 * np.pi * 0.45 * rate * t)  # near the source Nyquist: the filter must remove it on the way down
    x += 0.05 * rng.standard_normal(n)
    return np.clip(x, -1, 1).astype(np.float32)


def resample_refs(dirname):
    pairs = [(44100, 16000), (48000, 16000), (22050, 16000), (8000, 16000), (16000, 44100), (11025, 16000), (32000, 16000)]
    cases = []
    for i, (orig, new) in enumerate(pairs):
        for j, seconds in enumerate([1.0, 0.0371]):  # a second, and a short odd length
            x = signal(orig, seconds, 10 * i + j)
            y = torchaudio.functional.resample(torch.from_numpy(x), orig, new).numpy()
            name = f"resample_{orig}_{new}_{j}"
            save(dirname, name + "_in", x)
            save(dirname, name + "_out", y)
            cases.append({"name": name, "orig": orig, "new": new, "length": len(x), "outLength": len(y)})
    print(json.dumps({"cases": cases}))


def fbank(n_mels, dtype=torch.float64):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # melscale_fbanks makes its grids with the default dtype
    try:
        return torchaudio.functional.melscale_fbanks(201, 0.0, 8000.0, n_mels, SR, norm="slaney", mel_scale="slaney")
    finally:
        torch.set_default_dtype(previous)


def logmel_torch(x, n_mels, length):
    x = torch.from_numpy(x).float()
    if length is not None:
        x = x[:length] if x.numel() >= length else torch.nn.functional.pad(x, (0, length - x.numel()))
    window = torch.hann_window(400)  # periodic
    stft = torch.stft(x, 400, 160, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = stft[..., :-1].abs() ** 2  # [201, T], last frame dropped
    mel = fbank(n_mels).float().T @ power
    log = torch.clamp(mel, min=1e-10).log10()
    log = torch.maximum(log, log.max() - 8.0)
    return ((log + 4.0) / 4.0).numpy()  # [n_mels, T]


def logmel_refs(dirname):
    rng = np.random.default_rng(7)
    clips = {
        "speechlike_5s": signal(SR, 5.0, 1) * np.float32(0.8),
        "silence_3s": np.zeros(3 * SR, dtype=np.float32),
        "short_0p3s": signal(SR, 0.3, 2),
        "noise_30s": (0.5 * rng.standard_normal(30 * SR)).clip(-1, 1).astype(np.float32),
        "long_31s": signal(SR, 31.0, 3),
        "quiet_2s": (1e-4 * signal(SR, 2.0, 4)).astype(np.float32),
    }
    cases = []
    for name, x in clips.items():
        save(dirname, name, x)
        for n_mels in (80, 128):
            save(dirname, f"{name}_{n_mels}_30s", logmel_torch(x, n_mels, 30 * SR))
            save(dirname, f"{name}_{n_mels}_own", logmel_torch(x, n_mels, None))
        cases.append({"name": name, "length": len(x)})
    fbanks = {str(n): fbank(n).numpy().ravel().tolist() for n in (80, 128)}
    fbanks.update({f"{n}_float32": fbank(n, torch.float32).numpy().ravel().tolist() for n in (80, 128)})
    print(json.dumps({"cases": cases, "fbanks": fbanks}))


if __name__ == "__main__":
    cmd, dirname = sys.argv[1], sys.argv[2]
    os.makedirs(dirname, exist_ok=True)
    {"resample": resample_refs, "logmel": logmel_refs}[cmd](dirname)
