/** The two HF tokenizer files every Chimera tokenizer can be saved as, and writing them. */
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import { writeFileAtomic } from '@chimera/core';

/** The contents of HF's tokenizer.json and tokenizer_config.json. */
export interface HFTokenizerFiles {
  /** tokenizer.json (model, normalizer, pre-tokenizer, added tokens, ...). */
  tokenizerJson: Record<string, unknown>;
  /** tokenizer_config.json (special token strings, chat template, ...). */
  tokenizerConfig: Record<string, unknown>;
}

/** Writes tokenizer.json and tokenizer_config.json into `dir` (created if needed), each atomically. */
export async function writeTokenizerFiles(dir: string, files: HFTokenizerFiles): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await writeFileAtomic(nodePath.join(dir, 'tokenizer.json'), JSON.stringify(files.tokenizerJson, null, 2));
  await writeFileAtomic(nodePath.join(dir, 'tokenizer_config.json'), JSON.stringify(files.tokenizerConfig, null, 2));
}
