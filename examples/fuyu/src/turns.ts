/**
 * Several questions about one training image, one per shape in it: more answers for each pass of the image's
 * tokens through the decoder (which costs most of a step), without one answer giving another away:
 *
 *   <bos> [image] what shape is the red one ? | circle <eos> what color is the square ? | blue <eos>
 *
 * No two turns are about the same shape, so no turn names or answers something a later turn asks about that
 * shape. The first turn is the one the shared training stream draws (so one turn per image is the plain
 * stream); held-out questions always come alone, right after the image.
 */
import type { ComposedSample, SamplePart } from '@chimera/fusion';
import { SeededRandom, deriveSeed, type QuestionType, type ShapesDataset } from '@chimera-examples/shapes-dataset';
import { EOS, encodeWords, questionSample, trainingExamples, type Example, type SampleImage } from '@chimera-examples/shapes-vqa';

/** Per image of a training step: its first question (the shared stream's), then up to `maxTurns - 1` more. */
export function trainingTurns(dataset: ShapesDataset, seed: number, step: number, batchSize: number, types: readonly QuestionType[], maxTurns: number): Example[][] {
  return trainingExamples(dataset, seed, step, batchSize, types).map((first, i) => {
    if (maxTurns <= 1) return [first];
    const asked = new Set(dataset.allQuestions(first.split, first.index).find((q) => q.text === first.question)?.shapes ?? []);
    const rng = new SeededRandom(deriveSeed(deriveSeed(seed, step), i));
    const others = dataset.allQuestions(first.split, first.index).filter((q) => types.includes(q.type) && q.text !== first.question);
    // Fisher-Yates, seeded: which questions join is a function of (seed, step, image).
    for (let k = others.length - 1; k > 0; k--) {
      const j = rng.int(k + 1);
      [others[k], others[j]] = [others[j]!, others[k]!];
    }
    const turns = [first];
    for (const q of others) {
      if (turns.length >= maxTurns) break;
      if (q.shapes.length === 0 || q.shapes.some((s) => asked.has(s))) continue;
      q.shapes.forEach((s) => asked.add(s));
      turns.push({ ...first, type: q.type, question: q.text, answer: q.answer });
    }
    return turns;
  });
}

/** The training sample of the turns about one image (see the file comment). */
export function turnsSample(turns: readonly Example[], image: SampleImage | null): ComposedSample {
  const [first, ...rest] = turns;
  if (!first) throw new Error('turnsSample: expected at least one question/answer turn, got none');
  const parts = [...(questionSample(first, image, true) as SamplePart[])];
  for (const turn of rest) parts.push({ text: encodeWords(turn.question), trained: false }, { text: [...encodeWords(turn.answer), EOS] });
  return parts;
}
