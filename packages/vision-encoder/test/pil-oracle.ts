/**
 * PIL as an independent decoder for the image fuzz tests: one Python process (pil_oracle.py) answers many cases
 * over stdin/stdout. Like the torch helpers in @chimera/core/testing, the tests skip where no Python with PIL
 * exists, except under CHIMERA_REQUIRE_TORCH=1 (CI, which installs python3-pil next to python3-torch), where a
 * missing PIL is an error so a broken install cannot pass as green.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'pil_oracle.py');

let cached: string | null | undefined;

/** A python executable that can `import PIL`, or null. Override with CHIMERA_PIL_PYTHON. */
export function findPilPython(): string | null {
  if (cached !== undefined) return cached;
  const candidates = [process.env.CHIMERA_PIL_PYTHON, '/usr/bin/python3', 'python3'].filter(Boolean) as string[];
  cached = candidates.find((py) => spawnSync(py, ['-c', 'import PIL'], { stdio: 'ignore' }).status === 0) ?? null;
  return cached;
}

/** Whether PIL comparisons may run; under CHIMERA_REQUIRE_TORCH=1 a missing PIL throws instead of skipping. */
export function pilAvailable(): boolean {
  const found = findPilPython() !== null;
  if (!found && process.env.CHIMERA_REQUIRE_TORCH === '1') {
    throw new Error('CHIMERA_REQUIRE_TORCH=1 but no python with PIL was found (apt-get install python3-pil)');
  }
  return found;
}

export type PilResult =
  | { ok: true; format: string; mode: 'L' | 'LA' | 'RGB' | 'RGBA' | 'I16' | string; width: number; height: number; alpha: boolean; maxIndex?: number; pixels: Uint8Array }
  | { ok: false; stage: 'open' | 'load'; error: string };

/** One PIL process; `decode` calls are answered in order. */
export class PilOracle {
  private readonly child: ChildProcessWithoutNullStreams;
  private buffered = Buffer.alloc(0);
  private readonly waiting: { resolve: (r: PilResult) => void; reject: (e: Error) => void }[] = [];
  private failure: Error | null = null;

  /** Starts PIL with its bomb limit at `maxPixels` (PIL refuses above 2 * MAX_IMAGE_PIXELS). */
  constructor(maxPixels: number) {
    const python = findPilPython();
    if (!python) throw new Error('PilOracle: no python with PIL (apt-get install python3-pil)');
    this.child = spawn(python, [SCRIPT, String(maxPixels)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    this.child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    this.child.stdout.on('data', (d: Buffer) => this.receive(d));
    this.child.on('exit', (code) => this.fail(new Error(`pil_oracle.py exited with code ${code}: ${stderr.slice(-2000)}`)));
    this.child.on('error', (err) => this.fail(err));
  }

  decode(bytes: Uint8Array): Promise<PilResult> {
    if (this.failure) return Promise.reject(this.failure);
    if (bytes.length === 0) return Promise.resolve({ ok: false, stage: 'open', error: 'empty input (not sent)' });
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      const head = Buffer.alloc(4);
      head.writeUInt32BE(bytes.length);
      this.child.stdin.write(head);
      this.child.stdin.write(bytes);
    });
  }

  close(): void {
    const end = Buffer.alloc(4);
    this.child.stdin.end(end);
  }

  private receive(data: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, data]);
    for (;;) {
      const b = this.buffered;
      if (b.length < 4) return;
      const metaLength = b.readUInt32BE(0);
      if (b.length < 8 + metaLength) return;
      const pixelLength = b.readUInt32BE(4 + metaLength);
      const total = 8 + metaLength + pixelLength;
      if (b.length < total) return;
      const meta = JSON.parse(b.toString('utf8', 4, 4 + metaLength)) as PilResult;
      const pixels = new Uint8Array(b.subarray(8 + metaLength, total));
      this.buffered = b.subarray(total);
      const next = this.waiting.shift();
      if (!next) return this.fail(new Error('pil_oracle.py answered a request that was never made'));
      next.resolve(meta.ok ? { ...meta, pixels } : meta);
    }
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const w of this.waiting.splice(0)) w.reject(err);
  }
}
