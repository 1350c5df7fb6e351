export { initBackend, assertKernels, TRAINING_KERNELS, type BackendName, type BackendReport, type InitBackendOptions } from './backend';
export { installWasmFillIns, WASM_FILL_IN_KERNELS } from './wasm-fill-ins';
export { threadPolicyStatus, type ThreadPolicyStatus, type ThreadMode } from './thread-policy';
export { Rng, manualSeed, globalRandom, nextSeed } from './random';
export { FAST_PATHS, installFastPaths, uninstallFastPaths, type FastPathInfo } from './fast-paths';
