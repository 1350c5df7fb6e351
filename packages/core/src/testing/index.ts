/**
 * Test helpers for Chimera packages: `import { setupTestBackend, expectNoLeaks, gradCheck } from '@chimera/core/testing'`.
 *
 * @packageDocumentation
 */
export { TEST_BACKENDS, setupTestBackend } from './backend';
export { expectNoLeaks, expectNoLeaksSync } from './leaks';
export { gradCheck, gradCheckVariables, type GradCheckOptions, type GradCheckReport } from './grad-check';
export { Rng } from '../runtime/random';
export { findTorchPython, runTorchScript, torchAvailable } from './torch';
export { FULL_FUZZ_RUNS, fuzzRuns, fuzzTimeout } from './fuzz';
export { runCrashHarness, crashBudget, crashSummary, runCrashChild, acknowledgeSave, armCrashPoints, saveLeftovers, type CrashHarnessOptions, type CrashReport } from './crash';
export { HubTestServer, startHubTestServer, type HubTestCommitOptions, type HubTestRequest } from './hub-server';
