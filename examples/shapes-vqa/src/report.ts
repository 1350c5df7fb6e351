// What a VQA run shows a person: the answers picture (held-out images of several sizes with question and answer)
// and a printable table of accuracies per type for the model against its baselines.
import { imageGrid, type GridTile, type QuestionType } from '@chimera-examples/shapes-dataset';
import { writePng } from '@chimera-examples/shapes-dataset/png';
import type { RgbImage } from '@chimera/vision-encoder';
import { percent, type ExactMatch, type ScoreBreakdown } from './evaluate';
import type { Example } from './examples';

const RIGHT = [120, 220, 120] as const;
const WRONG = [240, 90, 90] as const;

export interface AnswerGridOptions {
  /** Types shown, the same number of each (default: those of the examples, in order). */
  types?: readonly QuestionType[];
  /** Tiles in all (default 24). */
  count?: number;
  /** Tiles per row (default 6). */
  columns?: number;
  /** Integer upscaling (default 2: the fine-detail images are already 96-144 px). */
  scale?: number;
}

/**
 * The tiles of the answers picture: per type, examples cycling through the image sizes present (so the picture
 * shows every size and aspect ratio), each with the question and the model's answer, green when right, red when
 * wrong followed by the right answer.
 */
export function answerTiles(examples: readonly Example[], score: Pick<ExactMatch, 'answers' | 'correct'>, options: AnswerGridOptions = {}): GridTile[] {
  if (score.answers.length !== examples.length) throw new Error(`answerTiles: got ${score.answers.length} answers for ${examples.length} examples; score the same examples`);
  const types = options.types ?? [...new Set(examples.map((e) => e.type))];
  const perType = Math.max(1, Math.floor((options.count ?? 24) / Math.max(1, types.length)));
  const tiles: GridTile[] = [];
  for (const type of types) {
    const bySize = new Map<string, number[]>();
    examples.forEach((e, i) => {
      if (e.type === type) bySize.set(e.size, [...(bySize.get(e.size) ?? []), i]);
    });
    const queues = [...bySize.values()];
    const picked: number[] = [];
    for (let round = 0; picked.length < perType && queues.some((q) => q.length > round); round++) {
      for (const queue of queues) if (round < queue.length && picked.length < perType) picked.push(queue[round]!);
    }
    for (const i of picked) {
      const example = examples[i]!;
      const right = score.correct[i]!;
      tiles.push({
        image: example.image,
        caption: [`${example.question} (${example.size})`, `= ${score.answers[i]}`, ...(right ? [] : [`(is ${example.answer})`])],
        captionColor: right ? RIGHT : WRONG,
      });
    }
  }
  return tiles;
}

/** The answers picture as an image (see answerTiles). */
export function answerGrid(examples: readonly Example[], score: Pick<ExactMatch, 'answers' | 'correct'>, options: AnswerGridOptions = {}): RgbImage {
  return imageGrid(answerTiles(examples, score, options), { columns: options.columns ?? 6, scale: options.scale ?? 2 });
}

/** Writes the answers picture as a PNG. */
export function writeAnswerGrid(path: string, examples: readonly Example[], score: Pick<ExactMatch, 'answers' | 'correct'>, options: AnswerGridOptions = {}): void {
  writePng(path, answerGrid(examples, score, options));
}

/**
 * Per-type accuracies of several scores side by side (the model first, then its baselines), with an 'all' row
 * and the number of held-out questions per type, as aligned lines.
 */
export function comparisonTable(columns: readonly { name: string; score: ScoreBreakdown }[], types: readonly QuestionType[]): string[] {
  if (columns.length === 0) throw new Error('comparisonTable: expected at least one { name, score } column');
  const header = ['question', ...columns.map((c) => c.name), 'held-out'];
  const rows = types.map((type) => [type, ...columns.map((c) => percent(c.score.byType[type]?.accuracy)), String(columns[0]!.score.byType[type]?.total ?? 0)]);
  rows.push(['all', ...columns.map((c) => percent(c.score.overall.accuracy)), String(columns[0]!.score.overall.total)]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]) => cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  return [line(header), ...rows.map(line)];
}

/** Accuracy per image size as lines, seen sizes and unseen sizes apart ('seen 128x96 97.0% (n=50)'). */
export function sizeTable(score: ScoreBreakdown, seen: readonly string[]): string[] {
  return Object.entries(score.bySize)
    .sort(([a], [b]) => Number(!seen.includes(a)) - Number(!seen.includes(b)) || a.localeCompare(b))
    .map(([size, s]) => `${seen.includes(size) ? 'seen  ' : 'unseen'} ${size.padEnd(7)} ${percent(s.accuracy).padStart(6)} (n=${s.total})`);
}
