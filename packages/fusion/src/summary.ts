/**
 * The parameter summary of a composed model: every group with its size and whether it trains, as a structured
 * form and as a table for logs.
 *
 *   group            kind        params  tensors  trainable
 *   llm              backbone    38,976       19  no
 *   image.encoder    encoder      7,152       28  no
 *   image.projector  connector    1,568        4  yes
 *   total                        47,696       51  1,568 trainable (3.3%)
 */
import type * as tf from '@tensorflow/tfjs';
import type { GroupKind, ParameterGroup } from './parameter-groups';

/** One parameter group in a {@link ModelSummary}. */
export interface GroupSummary {
  /** Group name (`llm`, `image.projector`, ...). */
  name: string;
  /** Group kind. */
  kind: GroupKind;
  /** One line on the group. */
  description: string;
  /** The modality it serves, if any. */
  modality?: string;
  /** Scalar count. */
  parameters: number;
  /** Tensor count. */
  tensors: number;
  /** Trainable scalar count. */
  trainableParameters: number;
  /** Trainable tensor count. */
  trainableTensors: number;
  /** 'yes' when every tensor trains, 'no' when none does, 'partial' otherwise. */
  trainable: 'yes' | 'no' | 'partial';
  /** Full parameter names. */
  names: string[];
}

/** Parameter counts and trainable state per group, with a printable table. */
export interface ModelSummary {
  /** Every group. */
  groups: GroupSummary[];
  /** Scalar count of the whole model. */
  totalParameters: number;
  /** Trainable scalar count of the whole model. */
  trainableParameters: number;
  /** The table shown by toString(). */
  table: string;
  /** The table. */
  toString(): string;
}

/** Counts parameters per group from the groups and the model's variables by name. */
export function summarize(groups: readonly ParameterGroup[], variables: ReadonlyMap<string, tf.Variable>): ModelSummary {
  const summaries = groups.map((group): GroupSummary => {
    let parameters = 0;
    let trainableParameters = 0;
    let trainableTensors = 0;
    for (const name of group.parameters) {
      const v = variables.get(name)!;
      parameters += v.size;
      if (v.trainable) {
        trainableParameters += v.size;
        trainableTensors++;
      }
    }
    const tensors = group.parameters.length;
    const trainable = trainableTensors === 0 ? 'no' : trainableTensors === tensors ? 'yes' : 'partial';
    return {
      name: group.name,
      kind: group.kind,
      description: group.description,
      ...(group.modality !== undefined ? { modality: group.modality } : {}),
      parameters,
      tensors,
      trainableParameters,
      trainableTensors,
      trainable,
      names: [...group.parameters],
    };
  });
  const totalParameters = summaries.reduce((n, g) => n + g.parameters, 0);
  const trainableParameters = summaries.reduce((n, g) => n + g.trainableParameters, 0);
  const table = formatTable(summaries, totalParameters, trainableParameters);
  return { groups: summaries, totalParameters, trainableParameters, table, toString: () => table };
}

function formatTable(groups: readonly GroupSummary[], total: number, trainable: number): string {
  const share = total > 0 ? ((100 * trainable) / total).toFixed(1) : '0.0';
  const rows: string[][] = [
    ['group', 'kind', 'params', 'tensors', 'trainable'],
    ...groups.map((g) => [
      g.name,
      g.kind,
      count(g.parameters),
      String(g.tensors),
      g.trainable === 'partial' ? `partial (${g.trainableTensors}/${g.tensors} tensors)` : g.trainable,
    ]),
    ['total', '', count(total), String(groups.reduce((n, g) => n + g.tensors, 0)), `${count(trainable)} trainable (${share}%)`],
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const numeric = [false, false, true, true, false];
  return rows
    .map((r) => r.map((cell, c) => (numeric[c] ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd())
    .join('\n');
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}
