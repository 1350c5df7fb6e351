/**
 * PyTorch references. Parity tests run a Python script that builds the reference with torch and writes its
 * inputs and outputs; they skip (not fail) where no Python with torch exists. CI installs Debian's
 * python3-torch, which lives under /usr/bin/python3 even when another python3 is first on PATH.
 */
import { execFileSync, spawnSync } from 'node:child_process';

let cached: string | null | undefined;

/** A python executable that can `import torch`, or null. Override with CHIMERA_TORCH_PYTHON. */
export function findTorchPython(): string | null {
  if (cached !== undefined) return cached;
  const candidates = [process.env.CHIMERA_TORCH_PYTHON, 'python3', '/usr/bin/python3'].filter(Boolean) as string[];
  cached = candidates.find((py) => spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0) ?? null;
  return cached;
}

/** Runs a reference script with arguments; throws with its stderr when it fails. Returns stdout. */
export function runTorchScript(script: string, args: string[] = []): string {
  const python = findTorchPython();
  if (!python) throw new Error('runTorchScript: no python with torch (apt-get install python3-torch)');
  try {
    return execFileSync(python, [script, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`reference script ${script} failed:\n${e.stderr ?? e.message}`);
  }
}

/**
 * Whether parity tests may run. Where CHIMERA_REQUIRE_TORCH=1 (CI) a missing torch is an error rather than a
 * skip, so a broken install cannot pass as green.
 */
export function torchAvailable(): boolean {
  const found = findTorchPython() !== null;
  if (!found && process.env.CHIMERA_REQUIRE_TORCH === '1') {
    throw new Error('CHIMERA_REQUIRE_TORCH=1 but no python with torch was found (apt-get install python3-torch)');
  }
  return found;
}
