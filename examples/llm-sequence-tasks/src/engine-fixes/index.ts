/**
 * Speed workarounds for two tfjs slow paths that a training step of a CausalLM hits; both belong in
 * @chimera/core (its wasm fill-ins and a gradient override) and should be deleted here once core has them.
 */
import { installLinearSegmentSum } from './segment-sum';
import { installFlaglessMatMulGradient } from './matmul-gradient';

export { installLinearSegmentSum, installFlaglessMatMulGradient };
export { batchMatMulGradients } from './matmul-gradient';

/** Installs both on the active backend; call once after initBackend(). Returns what it installed. */
export function installEngineFixes(): string[] {
  const installed: string[] = [];
  if (installLinearSegmentSum()) installed.push('UnsortedSegmentSum (linear time)');
  installFlaglessMatMulGradient();
  installed.push('BatchMatMul gradient (no transpose flags)');
  return installed;
}
