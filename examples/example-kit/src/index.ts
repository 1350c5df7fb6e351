/**
 * @chimera-examples/kit: the scaffolding every example script shares, kept in one place so the examples do not
 * copy it: flags (--help, usage errors with exit 2), the script runner, run timing, JSON outputs, training stages
 * through core's Trainer, and the loss curve PNG written next to the metrics.
 */
export { parseFlags, usageExit, UsageError, int, optionalInt, positive, fraction, oneOf, processIO, type FlagsConfig, type FlagValues, type ScriptIO } from './flags';
export { runScript, log } from './script';
export { RunClock, type RunTiming } from './run-clock';
export { defaultRunsDir, runDirectory, writeJson, writeJsonLines } from './outputs';
export { writeLossCurve } from './loss-curves';
export { runStage, type StageRunOptions } from './stage';
export { runBuiltScript, unknownFlagProblems, type ScriptRun } from './script-check';
