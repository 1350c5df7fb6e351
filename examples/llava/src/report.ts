// What a run leaves behind besides the shared outputs (metrics.json, loss.png: @chimera-examples/kit): the PNG grid
// of held-out questions with the model's answers, and the summary table printed at the end.
import { imageGrid, type GridTile, type QuestionType } from '@chimera-examples/shapes-dataset';
import { writePng } from '@chimera-examples/shapes-dataset/png';
import type { ExactMatch } from './evaluate';
import { percent } from './experiment';
import type { Example } from './samples';

const RIGHT = [120, 220, 120] as const;
const WRONG = [240, 90, 90] as const;

/**
 * Writes a grid of `count` held-out examples, the same number of each type: the image, the question, the
 * model's answer (green when right, red when wrong, then the right answer).
 */
export function writeAnswerGrid(path: string, examples: readonly Example[], score: ExactMatch, types: readonly QuestionType[], count = 40): void {
  const perType = Math.max(1, Math.floor(count / types.length));
  const tiles: GridTile[] = [];
  for (const type of types) {
    const picked = examples.flatMap((example, i) => (example.type === type ? [i] : [])).slice(0, perType);
    for (const i of picked) {
      const example = examples[i]!;
      const right = score.correct[i]!;
      tiles.push({
        image: example.image,
        caption: [example.question, `= ${score.answers[i]}`, ...(right ? [] : [`(is ${example.answer})`])],
        captionColor: right ? RIGHT : WRONG,
      });
    }
  }
  writePng(path, imageGrid(tiles, { columns: types.length * 2, scale: 4 }));
}

/** Per-type accuracies of the model against the baseline, as printable lines. */
export function comparisonTable(model: ExactMatch, baseline: ExactMatch, types: readonly QuestionType[], extra?: { name: string; score: ExactMatch }): string[] {
  const header = ['question', 'LLaVA', 'text-only', ...(extra ? [extra.name] : []), 'held-out'];
  const rows = types.map((type) => [
    type,
    percent(model.byType[type]?.accuracy ?? NaN),
    percent(baseline.byType[type]?.accuracy ?? NaN),
    ...(extra ? [percent(extra.score.byType[type]?.accuracy ?? NaN)] : []),
    String(model.byType[type]?.total ?? 0),
  ]);
  rows.push([
    'all',
    percent(model.overall.accuracy),
    percent(baseline.overall.accuracy),
    ...(extra ? [percent(extra.score.overall.accuracy)] : []),
    String(model.overall.total),
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]) => cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  return [line(header), ...rows.map(line)];
}
