// @chimera/vq-tokenizer: discrete image codes in and out (VQ-VAE / VQGAN, the LlamaGen / Janus VQ layout).
export const VQ_TOKENIZER_PACKAGE = '@chimera/vq-tokenizer';
