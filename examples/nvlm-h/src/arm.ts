/**
 * One arm's training, from the shared starting point to its scores: a fresh arm built from the seed gets the
 * pretrained ViT and the text-trained LLM, trains stage 1 ('fusion') and stage 2 ('projector+llm') on the pool's
 * frozen features, and is scored on the held-out questions after each. Everything it needs comes in as plain data
 * (no tensors, no models), so it runs the same in this process or in a child process of its own (arm-worker.ts),
 * which is how the script trains both arms at once on two cores.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Module } from '@chimera/core';
import type { ComposedModel, ComposedSample, TrainableSelection } from '@chimera/fusion';
import { runStage } from '@chimera-examples/kit';
import type { Question, QuestionType } from '@chimera-examples/shapes-dataset';
import { describeScore, exactMatch, questionSample, type Example, type ExactMatch } from '@chimera-examples/shapes-vqa';
import type { ImageFeatures } from './frozen-views';
import { buildArm, type ArmName, type NvlmSize } from './model';
import { drawBatch } from './pool';
import { TILE_TAGS } from './vocabulary';

export interface PhaseSettings {
  steps: number;
  /** Peak of the warmup + cosine schedule (it decays to a tenth of this). */
  learningRate: number;
  /** Images per step (default: the run's batch size). */
  batchSize?: number;
}

export interface PhaseReport {
  name: string;
  trainable: string;
  trainableParameters: number;
  steps: number;
  /** Wall seconds of the training steps. */
  seconds: number;
  /** CPU seconds of the process over the phase. */
  cpuSeconds: number;
  firstLoss: number | null;
  lastLoss: number | null;
}

/** A module's parameters as plain arrays (name -> values and shape), to hand weights to another model or process. */
export type WeightSnapshot = Record<string, { values: Float32Array; shape: number[] }>;

/** The parameters of `module` whose names pass `keep`. */
export function snapshot(module: Module, keep: (name: string) => boolean = () => true): WeightSnapshot {
  return Object.fromEntries(
    module
      .namedParameters()
      .filter(([name]) => keep(name))
      .map(([name, v]) => [name, { values: new Float32Array(v.dataSync()), shape: [...v.shape] }]),
  );
}

/** Assigns every snapshot entry to the same-named parameter of `module` (which must have them all). */
export function restore(module: Module, weights: WeightSnapshot): void {
  const target = new Map(module.namedParameters());
  for (const [name, { values, shape }] of Object.entries(weights)) {
    const variable = target.get(name);
    if (!variable) throw new Error(`restore: the model has no parameter ${name}; build it with the same size as the one the weights came from`);
    if (variable.shape.join('x') !== shape.join('x')) throw new Error(`restore: ${name} is [${variable.shape}] here but [${shape}] in the weights`);
    tf.tidy(() => variable.assign(tf.tensor(values, shape)));
  }
}

/** The LLM's own parameters (`llm.*`), without the blocks a strategy inserted into it (`llm.model.inserted.*`). */
export const isOwnLLMParameter = (name: string) => name.startsWith('llm.') && !name.startsWith('llm.model.inserted.');

export interface ArmInput {
  name: ArmName;
  size: NvlmSize;
  seed: number;
  types: readonly QuestionType[];
  phases: { stage1: PhaseSettings; stage2: PhaseSettings };
  batchSize: number;
  /** How often each type is drawn against the others an image has (default all alike; pool.ts). */
  typeWeights?: Partial<Record<QuestionType, number>>;
  /** The pool's questions per image (drawBatch), in the order of poolFeatures. */
  pool: readonly { questions: Partial<Record<QuestionType, Question[]>> }[];
  poolFeatures: readonly ImageFeatures[];
  heldOut: readonly Example[];
  heldOutFeatures: readonly ImageFeatures[];
  /** The pretrained ViT (`image.encoder` of the arm, without the prefix). */
  tower: WeightSnapshot;
  /** The text-trained LLM (`llm.*` names). */
  llm: WeightSnapshot;
  /** Where to save the trained arm's trainable-only checkpoint (none by default). */
  checkpointPath?: string;
  /** Folder for the Trainer's JSONL metrics (metrics-<arm>-<stage>.jsonl). */
  metricsDir?: string;
  progress?: boolean | 'auto';
}

export interface ArmOutput {
  name: ArmName;
  afterStage1: ExactMatch;
  final: ExactMatch;
  phases: PhaseReport[];
  parameters: number;
  /** Saved parameter tensors and all of them, when checkpointPath was given. */
  checkpoint: { savedTensors: number; totalTensors: number } | null;
}

/** What each stage trains (presets over parameter-group kinds, so both arms train the same kinds). */
export const STAGES: Record<'stage1' | 'stage2', { selection: TrainableSelection; label: string }> = {
  stage1: { selection: 'fusion', label: "'fusion' (projector, cross-attention blocks)" },
  stage2: { selection: 'projector+llm', label: "'projector+llm' (projector, cross-attention blocks, LLM)" },
};

/** Each stage draws its own steps of the seeded stream. */
const STEP_OFFSET = { stage1: 1_000_000, stage2: 2_000_000 } as const;

/** Greedy answers with the tile tags suppressed: they are input-only tokens, never an answer. */
export function answering(model: ComposedModel): Pick<ComposedModel, 'generate'> {
  return { generate: (prompts, options) => model.generate(prompts, { ...options, suppressTokens: TILE_TAGS }) };
}

/** Held-out exact match of an arm (features in heldOut's order). */
export function scoreArm(model: ComposedModel, heldOut: readonly Example[], features: readonly ImageFeatures[]): Promise<ExactMatch> {
  return exactMatch(answering(model), heldOut, features);
}

/** Trains and scores one arm (file comment); the model is disposed before it returns. */
export async function trainArm(input: ArmInput, log: (line: string) => void = () => {}): Promise<ArmOutput> {
  const { name, seed } = input;
  const arm = buildArm(name, input.size, seed);
  try {
    restore(arm.image.encoder, input.tower);
    restore(arm.model, input.llm);
    const phases: PhaseReport[] = [];
    const scores: ExactMatch[] = [];
    for (const stage of ['stage1', 'stage2'] as const) {
      const settings = input.phases[stage];
      const batchSize = settings.batchSize ?? input.batchSize;
      const summary = arm.model.trainOnly(STAGES[stage].selection);
      log(`${name} ${stage}: trains ${STAGES[stage].label}, ${summary.trainableParameters.toLocaleString('en-US')} parameters, ${settings.steps} steps of ${batchSize}`);
      const cpu = process.cpuUsage();
      const history =
        settings.steps > 0
          ? await runStage<ComposedModel, ComposedSample[]>(
              arm.model,
              {
                steps: settings.steps,
                learningRate: settings.learningRate,
                seed,
                metricsPath: input.metricsDir ? join(input.metricsDir, `metrics-${name}-${stage}.jsonl`) : undefined,
                progress: input.progress,
              },
              {
                label: `${name} ${stage}`,
                weightDecay: 0,
                batchAt: (step) =>
                  drawBatch(input.pool, seed, STEP_OFFSET[stage] + step, batchSize, input.typeWeights).map((draw) =>
                    questionSample({ question: draw.question.text, answer: draw.question.answer }, input.poolFeatures[draw.image]!, true),
                  ),
                loss: (m, batch) => m.loss(batch),
              },
            )
          : [];
      const { user, system } = process.cpuUsage(cpu);
      const report: PhaseReport = {
        name: `${name}-${stage}`,
        trainable: STAGES[stage].label,
        trainableParameters: summary.trainableParameters,
        steps: settings.steps,
        seconds: history.reduce((s, m) => s + m.time, 0),
        cpuSeconds: (user + system) / 1e6,
        firstLoss: history[0]?.loss ?? null,
        lastLoss: history.at(-1)?.loss ?? null,
      };
      phases.push(report);
      const score = await scoreArm(arm.model, input.heldOut, input.heldOutFeatures);
      scores.push(score);
      log(
        `${name} ${stage}: ${report.seconds.toFixed(1)} s (${report.cpuSeconds.toFixed(1)} s CPU), loss ${fmt(report.firstLoss)} -> ${fmt(report.lastLoss)}; ` +
          `held-out ${describeScore(score, input.types)}`,
      );
    }
    const saved = input.checkpointPath ? await arm.model.save(input.checkpointPath, { trainableOnly: true }) : null;
    return {
      name,
      afterStage1: scores[0]!,
      final: scores[1]!,
      phases,
      parameters: arm.model.summary().totalParameters,
      checkpoint: saved ? { savedTensors: saved.length, totalTensors: arm.model.namedParameters().length } : null,
    };
  } finally {
    arm.model.dispose();
  }
}

export function fmt(loss: number | null): string {
  return loss === null ? 'n/a' : loss.toFixed(3);
}
