// `chimera plot`: the Trainer's metrics JSONL (one or several runs) as PNG charts, one per metric with the runs
// overlaid, through @chimera/core/plot's plotMetrics.
import { UsageError, type Command, type CliIO, type ParsedCommandArgs } from '../command';
import { numberFlag, stringFlag, stringList } from '../flags';

const HELP = `Usage: chimera plot <metrics.jsonl> [<metrics.jsonl> ...] --out DIR [flags]

Draws the Trainer's metrics (JSONL, one { "step": n, ... } object a line) as PNG charts: one chart per
metric, every run given overlaid as its own line.

Arguments:
  <metrics.jsonl>     a metrics file (the Trainer's metricsPath); several files overlay several runs

Flags:
  --out DIR           folder the PNGs are written to (made if missing); required
  --metric NAME       a metric to chart; repeat for several (default: every numeric field, loss and lr first)
  --name NAME         the legend name of each run, in the order of the files (default: folder/file)
  --log NAME          draw this metric on a log y axis; repeat for several
  --prefix TEXT       prepended to each file name: <prefix><metric>.png
  --width PX          plot area width (default 560)
  --height PX         plot area height (default 300)
  -h, --help          this help

Examples:
  chimera plot runs/vit-shapes/metrics.jsonl --out runs/vit-shapes/plots
  chimera plot runs/a/metrics.jsonl runs/b/metrics.jsonl --name "lr 3e-4" --name "lr 1e-3" --metric loss --log loss --out plots
`;

async function run({ values, positionals }: ParsedCommandArgs, io: CliIO): Promise<number> {
  const outDir = stringFlag(values, 'out');
  if (outDir === undefined) throw new UsageError('--out DIR is required (the folder the PNGs go to)');
  const names = stringList(values, 'name');
  if (names.length > 0 && names.length !== positionals.length) {
    throw new UsageError(`--name was given ${names.length} times for ${positionals.length} metrics files; give one name per file, in order`);
  }
  const metrics = stringList(values, 'metric');
  const logScale = stringList(values, 'log');
  const width = numberFlag(values, 'width', { integer: true, min: 50 });
  const height = numberFlag(values, 'height', { integer: true, min: 50 });
  const prefix = stringFlag(values, 'prefix');
  const { plotMetrics } = await import('@chimera/core/plot');
  const result = await plotMetrics(
    positionals.map((path, i) => (names.length ? { path, name: names[i]! } : { path })),
    {
      outDir,
      ...(metrics.length ? { metrics } : {}),
      ...(logScale.length ? { logScale } : {}),
      ...(prefix !== undefined ? { prefix } : {}),
      ...(width !== undefined ? { width } : {}),
      ...(height !== undefined ? { height } : {}),
    },
  );
  for (const chart of result.charts) {
    const runs = chart.runs.map((r) => `${r.name} ${r.points} points`).join(', ');
    io.stdout.write(`${chart.path}  ${chart.width}x${chart.height}  ${chart.metric}: ${runs}\n`);
  }
  return 0;
}

export const plotCommand: Command = {
  name: 'plot',
  summary: "PNG charts of the Trainer's metrics JSONL (loss, lr, eval metrics; several runs overlaid)",
  help: HELP,
  options: {
    out: { type: 'string' },
    metric: { type: 'string', multiple: true },
    name: { type: 'string', multiple: true },
    log: { type: 'string', multiple: true },
    prefix: { type: 'string' },
    width: { type: 'string' },
    height: { type: 'string' },
  },
  positionals: { min: 1, max: 64, names: '<metrics.jsonl> ...' },
  run,
};
