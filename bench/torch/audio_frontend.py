"""Seconds per Whisper log-mel extraction (and per 44.1 -> 16 kHz resample) of 30 s clips, as JSON.

The PyTorch twin of bench/audio-frontend.ts: HF WhisperFeatureExtractor's torch path (openai/whisper
`log_mel_spectrogram`): torch.stft (n_fft 400, hop 160, periodic Hann, centre reflect padding), |X|^2 with the
last frame dropped, the Slaney mel bank (torchaudio melscale_fbanks, built once), log10 clamped at 1e-10,
floored at each clip's max - 8, (x + 4) / 4. Inputs are 30 s of noise at 16 kHz, batch --batch.

    python3 bench/torch/audio_frontend.py --threads 1 --batch 4
    python3 bench/torch/audio_frontend.py --threads 1 --resample
"""
import argparse
import json

import torch
import torchaudio
from timing import time_steps

p = argparse.ArgumentParser()
for name, default in [('mels', 80), ('batch', 1), ('seconds', 30), ('steps', 5), ('warmup', 2), ('threads', 1)]:
    p.add_argument('--' + name, type=int, default=default)
p.add_argument('--resample', action='store_true')
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)

if a.resample:
    x = torch.rand(a.batch, 44100 * a.seconds) * 2 - 1

    def step():
        return torchaudio.functional.resample(x, 44100, 16000).shape
else:
    x = torch.rand(a.batch, 16000 * a.seconds) * 2 - 1
    window = torch.hann_window(400)
    fb = torchaudio.functional.melscale_fbanks(201, 0.0, 8000.0, a.mels, 16000, norm='slaney', mel_scale='slaney')

    def step():
        stft = torch.stft(x, 400, 160, window=window, return_complex=True)
        power = stft[..., :-1].abs() ** 2  # (B, 201, T)
        log = torch.clamp(fb.T @ power, min=1e-10).log10()  # (B, n_mels, T)
        log = torch.maximum(log, log.amax(dim=(1, 2), keepdim=True) - 8.0)
        return ((log + 4.0) / 4.0).shape

times, cpu = time_steps(step, a.warmup, a.steps)
times.sort()
print(json.dumps({'threads': a.threads, 'batch': a.batch, 'seconds_per_step': times[len(times) // 2], 'best_seconds': times[0],
                  'best_cpu_seconds': min(cpu), 'steps': a.steps, 'torch': torch.__version__}))
