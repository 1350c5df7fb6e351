// `chimera summary`: what a checkpoint or export holds, from the safetensors headers alone (no tensor is loaded):
// files, layout, dtypes, parameter counts by group, and with --tensors every tensor's dtype and shape.
import type { TensorEntry } from '@chimera/core';
import type { Command, CliIO, ParsedCommandArgs } from '../command';
import { readCheckpointFiles, readConfigJson, type CheckpointFiles } from '../checkpoint-files';
import { booleanFlag, numberFlag } from '../flags';

const HELP = `Usage: chimera summary <path> [--depth N] [--tensors] [--json]

What a checkpoint or export holds, read from the safetensors headers only (no tensor is loaded).

Arguments:
  <path>         a .safetensors file, a model.safetensors.index.json, or a model folder
                 (an HF export, a Chimera checkpoint, a Trainer checkpoint step folder)

Flags:
  --depth N      group tensors by their first N name parts (default 2); a layer index
                 ends a group as '*', so model.layers.0..27 count as model.layers.*
  --tensors      also list every tensor: name, dtype, shape, parameters
  --json         print one JSON object instead of text
  -h, --help     this help

Examples:
  chimera summary models/SmolLM2-135M
  chimera summary runs/llava/step-00000200/model.safetensors --tensors
`;

interface Group {
  name: string;
  tensors: number;
  parameters: number;
}

export interface CheckpointSummary {
  path: string;
  layout: 'hf' | 'chimera';
  chimeraKind?: string;
  files: { path: string; tensors: number; bytes: number; metadata: Record<string, string> }[];
  config: { modelType?: unknown; architectures?: unknown } | null;
  tensors: number;
  parameters: number;
  bytes: number;
  dtypes: Record<string, { tensors: number; parameters: number }>;
  groups: Group[];
  tensorList: { name: string; dtype: string; shape: number[]; parameters: number; file: string }[];
}

function parameterCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * The group of a tensor name: its first `depth` parts, a layer index ending the group as '*' (also right after the
 * last part). `model.layers.3.mlp.up_proj.weight` -> `model.layers.*`; `lm_head.weight` -> `lm_head` (the leaf is
 * never a group).
 */
export function groupOf(name: string, depth: number): string {
  const parts = name.split('.');
  const path = parts.length > 1 ? parts.slice(0, -1) : parts;
  const out: string[] = [];
  for (const part of path) {
    // A layer index right after the last part still joins as '*', so all layers form one group.
    if (out.length === depth && !/^\d+$/.test(part)) break;
    if (/^\d+$/.test(part)) {
      out.push('*');
      break;
    }
    out.push(part);
  }
  return out.join('.');
}

export function summarize(path: string, found: CheckpointFiles, config: Record<string, unknown> | null, depth: number): CheckpointSummary {
  const groups = new Map<string, Group>();
  const dtypes: CheckpointSummary['dtypes'] = {};
  const tensorList: CheckpointSummary['tensorList'] = [];
  let parameters = 0;
  let bytes = 0;
  for (const file of found.files) {
    for (const entry of file.entries as TensorEntry[]) {
      const count = parameterCount(entry.shape);
      parameters += count;
      bytes += entry.end - entry.begin;
      const groupName = groupOf(entry.name, depth);
      const group = groups.get(groupName) ?? { name: groupName, tensors: 0, parameters: 0 };
      group.tensors += 1;
      group.parameters += count;
      groups.set(groupName, group);
      const dtype = (dtypes[entry.dtype] ??= { tensors: 0, parameters: 0 });
      dtype.tensors += 1;
      dtype.parameters += count;
      tensorList.push({ name: entry.name, dtype: entry.dtype, shape: entry.shape, parameters: count, file: file.path });
    }
  }
  return {
    path,
    layout: found.layout,
    ...(found.chimeraKind ? { chimeraKind: found.chimeraKind } : {}),
    files: found.files.map((f) => ({ path: f.path, tensors: f.entries.length, bytes: f.entries.reduce((s, e) => s + e.end - e.begin, 0), metadata: f.metadata })),
    config: config ? { modelType: config.model_type, architectures: config.architectures } : null,
    tensors: tensorList.length,
    parameters,
    bytes,
    dtypes,
    groups: [...groups.values()],
    tensorList,
  };
}

const fmt = (n: number) => n.toLocaleString('en-US');

function humanBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

function table(rows: string[][], rightAligned: Set<number>): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (rightAligned.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

function describe(summary: CheckpointSummary, listTensors: boolean): string {
  const lines: string[] = [];
  const layout =
    summary.layout === 'chimera'
      ? `Chimera checkpoint (${summary.chimeraKind}; Chimera names, Linear weights [in, out])`
      : 'HF / PyTorch (Linear weights [out, in])';
  lines.push(`${summary.path}`);
  lines.push(`  layout      ${layout}`);
  lines.push(`  files       ${summary.files.length} (${humanBytes(summary.bytes)} of tensor data)`);
  if (summary.config) {
    const arch = Array.isArray(summary.config.architectures) ? ` (${summary.config.architectures.join(', ')})` : '';
    lines.push(`  config      model_type ${String(summary.config.modelType ?? '?')}${arch}`);
  }
  lines.push(`  tensors     ${fmt(summary.tensors)}`);
  lines.push(`  parameters  ${fmt(summary.parameters)}`);
  lines.push(`  dtypes      ${Object.entries(summary.dtypes).map(([d, s]) => `${d} ${fmt(s.parameters)} (${s.tensors} tensors)`).join(', ')}`);
  lines.push('');
  const total = summary.parameters || 1;
  const groupRows = [
    ['group', 'tensors', 'parameters', 'share'],
    ...summary.groups.map((g) => [g.name, fmt(g.tensors), fmt(g.parameters), `${((100 * g.parameters) / total).toFixed(1)}%`]),
    ['total', fmt(summary.tensors), fmt(summary.parameters), '100.0%'],
  ];
  lines.push(table(groupRows, new Set([1, 2, 3])));
  if (listTensors) {
    lines.push('');
    const tensorRows = [['tensor', 'dtype', 'shape', 'parameters'], ...summary.tensorList.map((t) => [t.name, t.dtype, `[${t.shape.join(', ')}]`, fmt(t.parameters)])];
    lines.push(table(tensorRows, new Set([3])));
  }
  return `${lines.join('\n')}\n`;
}

async function run({ values, positionals }: ParsedCommandArgs, io: CliIO): Promise<number> {
  const depth = numberFlag(values, 'depth', { integer: true, min: 1 }) ?? 2;
  const path = positionals[0]!;
  const found = await readCheckpointFiles(path);
  const config = await readConfigJson(found.dir);
  const summary = summarize(path, found, config, depth);
  if (booleanFlag(values, 'json')) {
    io.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  } else {
    io.stdout.write(describe(summary, booleanFlag(values, 'tensors')));
  }
  return 0;
}

export const summaryCommand: Command = {
  name: 'summary',
  summary: 'tensors, shapes, dtypes and parameter counts by group of a checkpoint or export',
  help: HELP,
  options: {
    depth: { type: 'string' },
    tensors: { type: 'boolean' },
    json: { type: 'boolean' },
  },
  positionals: { min: 1, max: 1, names: '<path>' },
  run,
};
