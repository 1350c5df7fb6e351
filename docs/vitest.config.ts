import { defineConfig } from 'vitest/config';
import { sharedTestConfig } from '../vitest.shared';

// Snippet programs run as child processes; two at a time fill the 2 cores CI has.
export default defineConfig({ test: { ...sharedTestConfig, maxConcurrency: 2 } });
