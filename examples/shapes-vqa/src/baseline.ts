/**
 * The text-only baseline every VQA example reports: the LLM alone learns the same questions and answers without
 * the image, then answers the held-out questions without it. What it scores is what the question text and the
 * answer statistics give away; the image-grounded model must beat it by a margin.
 *
 * It trains the composed model's 'llm' group (everything else frozen; nothing runs through the image parts), so
 * a caller may use it as the LLM pretraining stage (LLaVA's recipe) or run it on a second model of the same size.
 */
import type { StepMetrics } from '@chimera/core';
import type { ComposedModel, ComposedSample } from '@chimera/fusion';
import { runStage } from '@chimera-examples/kit';
import type { QuestionType, ShapesDataset } from '@chimera-examples/shapes-dataset';
import { exactMatch, type ExactMatch } from './evaluate';
import { trainingExamples, type Example } from './examples';
import { questionSample } from './samples';

export interface TextBaselineOptions {
  /** Where the training questions come from (its train split). */
  dataset: ShapesDataset;
  types: readonly QuestionType[];
  /** The held-out examples it is scored on (the image model's). */
  heldOut: readonly Example[];
  steps: number;
  /** Peak learning rate (warmup, then cosine to a tenth: runStage). */
  learningRate: number;
  batchSize: number;
  /** Seeds the training questions and the Trainer. */
  seed: number;
  /** AdamW's decoupled weight decay (default 0). */
  weightDecay?: number;
  /** Added to the step when drawing questions, so another stage with the same seed sees other scenes (default 0). */
  stepOffset?: number;
  metricsPath?: string;
  progress?: boolean | 'auto';
}

export interface TextBaselineResult {
  history: StepMetrics[];
  /** Held-out exact match without the image. */
  score: ExactMatch;
}

/** Trains the model's LLM on text-only samples and scores it on the held-out questions without the image. */
export async function trainTextBaseline(model: ComposedModel, options: TextBaselineOptions): Promise<TextBaselineResult> {
  const offset = options.stepOffset ?? 0;
  model.trainOnly('llm');
  const history =
    options.steps > 0
      ? await runStage<ComposedModel, ComposedSample[]>(
          model,
          { steps: options.steps, learningRate: options.learningRate, seed: options.seed, metricsPath: options.metricsPath, progress: options.progress },
          {
            label: 'text-only baseline',
            weightDecay: options.weightDecay ?? 0,
            batchAt: (step) =>
              trainingExamples(options.dataset, options.seed, offset + step, options.batchSize, options.types).map((example) => questionSample(example, null, true)),
            loss: (m, batch) => m.loss(batch),
          },
        )
      : [];
  return { history, score: await scoreTextOnly(model, options.heldOut) };
}

/** Held-out exact match of the model without the image. */
export function scoreTextOnly(model: Pick<ComposedModel, 'generate'>, heldOut: readonly Example[]): Promise<ExactMatch> {
  return exactMatch(model, heldOut, null);
}
