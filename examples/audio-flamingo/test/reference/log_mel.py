# Whisper's log-mel features in PyTorch (openai/whisper audio.py: torch.stft + torchaudio's Slaney mel filterbank),
# for the example's stand-in frontend. Reads float32 PCM from argv[1], writes float32 [frames, bins] to argv[2].
import sys
import numpy as np
import torch
import torchaudio

pcm = torch.from_numpy(np.fromfile(sys.argv[1], dtype=np.float32)).double()
bins = int(sys.argv[3])
stft = torch.stft(pcm, 400, 160, window=torch.hann_window(400, dtype=torch.float64), center=True, pad_mode='reflect', return_complex=True)
power = stft[..., :-1].abs() ** 2  # [201, frames]
fb = torchaudio.functional.melscale_fbanks(201, 0.0, 8000.0, bins, 16000, norm='slaney', mel_scale='slaney').double()  # [201, bins]
mel = (fb.T @ power).clamp(min=1e-10).log10()
mel = torch.maximum(mel, mel.max() - 8.0)
mel = (mel + 4.0) / 4.0
mel.T.contiguous().float().numpy().tofile(sys.argv[2])
