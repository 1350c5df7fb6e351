// Plain-JS audio values shared by the decoder, the resampler and the frontend.

/** Mono samples in [-1, 1] and their rate in Hz. */
export interface AudioClip {
  /** Mono samples in [-1, 1]. */
  samples: Float32Array;
  /** Samples per second (Hz). */
  sampleRate: number;
}

/** Several channels of equal length, each in [-1, 1], and their rate in Hz. */
export interface MultiChannelAudio {
  /** One array per channel, all the same length. */
  channels: Float32Array[];
  /** Samples per second per channel (Hz). */
  sampleRate: number;
}

/** What a WAV header says, as read by `readWavInfo` (and returned next to decoded samples). */
export interface WavInfo {
  /** 'pcm' (integer samples; format code 1) or 'float' (IEEE float; format code 3). */
  encoding: 'pcm' | 'float';
  /** 1 or 3; for WAVE_FORMAT_EXTENSIBLE files the sub-format's code. */
  formatCode: number;
  /** True for WAVE_FORMAT_EXTENSIBLE (0xFFFE). */
  extensible: boolean;
  /** Container bits per sample: 8, 16, 24, 32 (pcm) or 32, 64 (float). */
  bitsPerSample: number;
  /** Meaningful bits (the extensible header's wValidBitsPerSample; else bitsPerSample). */
  validBitsPerSample: number;
  /** Channels in the file. */
  channels: number;
  /** Samples per second per channel (Hz). */
  sampleRate: number;
  /** Samples per channel. */
  frames: number;
  /** Byte offset and length of the sample data in the file. */
  dataOffset: number;
  /** Length of the sample data in bytes. */
  dataBytes: number;
}
