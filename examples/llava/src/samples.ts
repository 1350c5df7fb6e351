/**
 * LLaVA's training conversations: up to `turns` different questions about one image, as LLaVA's instruction data
 * holds several turns per image (more answers per encoded image). The questions, samples and held-out sets
 * themselves are the shared ones (@chimera-examples/shapes-vqa); the extra turns here are the dataset's own
 * further draws about the same scene (its question `slot`s), which this example's recorded runs used.
 *
 *   <bos> <image> what color is the square ? | red <eos> | how many stars are there ? | 2 <eos>
 */
import { SPLITS, deriveSeed, type QuestionType, type ShapesDataset } from '@chimera-examples/shapes-dataset';
import { exampleAt, type Example } from '@chimera-examples/shapes-vqa';

/**
 * The training conversations of a step, one per image: up to `turns` different questions about it. Images are
 * spread over the whole train split by a seeded bijective hash, so a step's data is a pure function of
 * (seed, step) and runs with different seeds see different scenes (with one turn: shapes-vqa's trainingExamples).
 */
export function trainingConversations(
  dataset: ShapesDataset,
  seed: number,
  step: number,
  batchSize: number,
  types: readonly QuestionType[],
  turns = 1,
): Example[][] {
  return Array.from({ length: batchSize }, (_, i) => {
    const index = deriveSeed(seed, (step * batchSize + i) >>> 0) % SPLITS.train.size;
    const first = exampleAt(dataset, 'train', index, types);
    const conversation = [first];
    for (let slot = 1; slot < turns; slot++) {
      const next = exampleAt(dataset, 'train', first.index, types, slot);
      if (!conversation.some((e) => e.question === next.question)) conversation.push(next);
    }
    return conversation;
  });
}
