// Folder saves as one unit (directory-commit.ts): what a re-save keeps and removes, recovery of a save
// interrupted after its commit point, leftovers of killed saves, concurrent saves, and write errors that name
// the target and the cause (real full and read-only file systems where this machine lets the test mount them).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { spawn, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import {
  commitDirectory,
  describeWriteFailure,
  loadShardedSafetensors,
  saveSafetensors,
  saveShardedSafetensors,
  WriteError,
  writeFileAtomic,
} from '../src/weights/index';
import { COMMIT_RECORD, SAVE_LOCK } from '../src/weights/directory-commit';
import { setupTestBackend } from '../src/testing/index';
import { saveLeftovers } from '../src/testing/crash';

let tmp: string;
beforeAll(async () => {
  await setupTestBackend('cpu');
  tmp = await fs.mkdtemp(nodePath.join(os.tmpdir(), 'chimera-commit-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

async function scratch(): Promise<string> {
  return fs.mkdtemp(nodePath.join(tmp, 'case-'));
}

/** Six 100-float tensors all holding `value`. */
function version(value: number): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  for (let i = 0; i < 6; i++) out[`w${i}`] = tf.fill([100], value);
  return out;
}

async function loadedVersion(dir: string): Promise<number> {
  const { tensors } = await loadShardedSafetensors(dir);
  const seen = new Set<number>();
  for (const t of Object.values(tensors)) {
    for (const v of t.dataSync()) seen.add(v);
    t.dispose();
  }
  if (seen.size !== 1) throw new Error(`mixed versions: ${[...seen].join(', ')}`);
  return [...seen][0]!;
}

/** A pid that is certainly not running: a child that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

describe('a folder save replaces its checkpoint as one unit', () => {
  it('keeps the folder’s other files, removes the stale shards and index, and leaves no bookkeeping', async () => {
    const dir = await scratch();
    await fs.writeFile(nodePath.join(dir, 'README.md'), 'notes');
    const three = version(1);
    await saveShardedSafetensors(dir, three, { maxShardBytes: 900 });
    expect((await fs.readdir(dir)).sort()).toEqual([
      'README.md',
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
      'model.safetensors.index.json',
    ]);
    const one = version(2);
    await saveShardedSafetensors(dir, one);
    expect((await fs.readdir(dir)).sort()).toEqual(['README.md', 'model.safetensors']);
    expect(await fs.readFile(nodePath.join(dir, 'README.md'), 'utf8')).toBe('notes');
    expect(await loadedVersion(dir)).toBe(2);
    tf.dispose([...Object.values(three), ...Object.values(one)]);
  });

  it('a save that fails midway leaves the previous checkpoint byte for byte, and the error names the folder', async () => {
    const dir = await scratch();
    const first = version(1);
    await saveShardedSafetensors(dir, first, { maxShardBytes: 900 });
    const before = await snapshot(dir);
    const second = version(2);
    // The third tensor's data cannot be read: the save fails after two shards were staged.
    (second.w4 as unknown as { data: () => Promise<never> }).data = async () => {
      throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
    };
    const error = await saveShardedSafetensors(dir, second, { maxShardBytes: 900 }).then(
      () => null,
      (e: Error) => e,
    );
    expect(error).toBeInstanceOf(WriteError);
    expect(error!.message).toContain(dir);
    expect(error!.message).toMatch(/EIO/);
    expect(error!.message).toMatch(/previous version, if any, is intact/);
    expect(error!.message).not.toMatch(/staging|\.tmp-/);
    expect(await snapshot(dir)).toEqual(before);
    tf.dispose([...Object.values(first), ...Object.values(second)]);
  });

  it('a load finishes a save that was killed after its commit record, and removes leftovers of killed saves', async () => {
    const dir = await scratch();
    const old = version(1);
    await saveShardedSafetensors(dir, old, { maxShardBytes: 900 });
    // What a save of version 2 leaves when killed after writing its record and moving one file.
    const staging = `.chimera-staging-${deadPid()}-abcdef`;
    await fs.mkdir(nodePath.join(dir, staging));
    const fresh = version(2);
    await saveShardedSafetensors(nodePath.join(dir, staging), fresh, { maxShardBytes: 900 });
    const staged = (await fs.readdir(nodePath.join(dir, staging))).filter((n) => !n.startsWith('.')).sort();
    await fs.rename(nodePath.join(dir, staging, staged[0]!), nodePath.join(dir, staged[0]!));
    await fs.writeFile(nodePath.join(dir, COMMIT_RECORD), JSON.stringify({ format: 'chimera-commit', version: 1, staging, files: staged, remove: [] }));
    // ...plus a stale lock, a temporary and another staging folder, all of dead processes.
    await fs.writeFile(nodePath.join(dir, SAVE_LOCK), `${deadPid()}\n`);
    await fs.writeFile(nodePath.join(dir, `.model.safetensors.tmp-${deadPid()}-0123ab`), 'torn');
    await fs.mkdir(nodePath.join(dir, `.chimera-staging-${deadPid()}-fedcba`));
    expect(await loadedVersion(dir)).toBe(2);
    expect(saveLeftovers(dir)).toEqual([]);
    tf.dispose([...Object.values(old), ...Object.values(fresh)]);
  });

  it('leftovers of a killed save without a commit record are removed by the next load, and the old version loads', async () => {
    const dir = await scratch();
    const old = version(1);
    await saveShardedSafetensors(dir, old);
    const staging = nodePath.join(dir, `.chimera-staging-${deadPid()}-abcdef`);
    await fs.mkdir(staging);
    await fs.writeFile(nodePath.join(staging, 'model.safetensors'), 'half a file');
    await fs.writeFile(nodePath.join(dir, SAVE_LOCK), `${deadPid()}\n`);
    expect(await loadedVersion(dir)).toBe(1);
    expect(saveLeftovers(dir)).toEqual([]);
    tf.dispose(Object.values(old));
  });

  it('a single-file save removes the temporaries its killed predecessors left', async () => {
    const dir = await scratch();
    const path = nodePath.join(dir, 'm.safetensors');
    await fs.writeFile(nodePath.join(dir, `.m.safetensors.tmp-${deadPid()}-00aa11`), 'torn');
    const live = `.m.safetensors.tmp-${process.pid}-00bb22`; // ours, still "being written": kept
    await fs.writeFile(nodePath.join(dir, live), 'in progress');
    const t = version(3);
    await saveSafetensors(path, t);
    expect((await fs.readdir(dir)).sort()).toEqual([live, 'm.safetensors'].sort());
    tf.dispose(Object.values(t));
  });

  it('concurrent saves in one process are serialised: every read sees one version whole', async () => {
    const dir = await scratch();
    const versions = [1, 2, 3, 4, 5].map(version);
    const saves = versions.map((v) => saveShardedSafetensors(dir, v, { maxShardBytes: 900 }));
    const reads: number[] = [];
    for (let i = 0; i < 5; i++) reads.push(await loadedVersion(dir).catch(() => -1));
    await Promise.all(saves);
    expect(await loadedVersion(dir)).toBe(5);
    expect(reads.every((r) => r === -1 || (r >= 1 && r <= 5))).toBe(true);
    tf.dispose(versions.flatMap((v) => Object.values(v)));
  });

  it('two processes saving into one folder at once never mix: a reader racing them sees whole versions', async () => {
    const dir = nodePath.join(await scratch(), 'ckpt');
    const child = nodePath.join(__dirname, 'crash', 'child.mjs');
    const start = (first: number) =>
      spawn(process.execPath, [child, dir, String(first)], { env: { ...process.env, CHIMERA_CRASH_MODE: 'sharded' }, stdio: 'ignore' });
    // Version ranges that never overlap: 1.. and 1,000,001..
    const writers = [start(1), start(1_000_001)];
    const seen = new Set<number>();
    // Race for 4 s, longer (up to 60 s) on a busy machine until one read got through.
    const until = Date.now() + 4000;
    const limit = Date.now() + 60_000;
    try {
      while (Date.now() < until || (seen.size === 0 && Date.now() < limit)) {
        try {
          seen.add(await readCrashModel(dir));
        } catch (error) {
          // Refusing to read a folder that changed under every attempt is honest, not a mix.
          if (!/no such checkpoint|holds neither|kept changing while it was read/.test((error as Error).message)) throw error;
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      writers.forEach((w) => w.kill('SIGKILL'));
      await Promise.all(writers.map((w) => new Promise((resolve) => w.on('close', resolve))));
    }
    // Each read was one version whole (readCrashModel throws on a mix), and reads did happen.
    expect(seen.size).toBeGreaterThan(0);
    expect(await readCrashModel(dir)).toBeGreaterThan(0); // and what is left loads
  });
});

/** The crash child's model: every tensor holds the version, as does the metadata. */
async function readCrashModel(dir: string): Promise<number> {
  const { tensors, metadata } = await loadShardedSafetensors(dir);
  const seen = new Set<number>();
  for (const t of Object.values(tensors)) {
    for (const v of t.dataSync()) seen.add(v);
    t.dispose();
  }
  if (seen.size !== 1 || metadata.version !== String([...seen][0])) throw new Error(`mixed: tensors ${[...seen].join(', ')}, metadata ${metadata.version}`);
  return [...seen][0]!;
}

async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await fs.readdir(dir)).sort()) out[name] = (await fs.readFile(nodePath.join(dir, name))).toString('base64');
  return out;
}

describe('write errors name the target and the cause', () => {
  const errno = (code: string, path: string) => Object.assign(new Error(`${code}: failure, open '${path}'`), { code, path });

  it.each([
    ['ENOSPC', /disk holding .* is full \(ENOSPC\)/],
    ['EROFS', /read-only \(EROFS\)/],
    ['EACCES', /permission denied \(EACCES\)/],
    ['EMFILE', /too many open files/],
  ])('%s', async (code, pattern) => {
    const target = '/data/run/ckpt';
    const error = await describeWriteFailure(errno(code, '/data/run/ckpt/.chimera-staging-1-ab/model.safetensors'), target);
    expect(error).toBeInstanceOf(WriteError);
    expect(error.message).toMatch(pattern);
    expect(error.message).toContain(target);
    expect(error.message).not.toContain('staging');
    expect((error as WriteError).code).toBe(code);
  });

  it('passes errors that are not the file system’s through unchanged', async () => {
    const bug = new TypeError('x is undefined');
    expect(await describeWriteFailure(bug, '/somewhere')).toBe(bug);
  });

  it('a file save into a folder that does not exist says which folder, not the temporary', async () => {
    const path = nodePath.join(await scratch(), 'missing', 'm.safetensors');
    const error = await writeFileAtomic(path, 'x').then(() => null, (e: Error) => e);
    expect(error!.message).toContain(path);
    expect(error!.message).toMatch(/folder .*missing does not exist/);
    expect(error!.message).not.toMatch(/\.tmp-/);
  });

  it('a commit into a path whose parent is a file says a file is in the way', async () => {
    const dir = await scratch();
    await fs.writeFile(nodePath.join(dir, 'plain'), 'x');
    const target = nodePath.join(dir, 'plain', 'ckpt');
    const error = await commitDirectory(target, async () => undefined).then(() => null, (e: Error) => e);
    expect(error!.message).toContain(target);
    expect(error!.message).toMatch(/in the way \((ENOTDIR|EEXIST)\)/);
  });

  describe('on real full and read-only file systems (tmpfs mounts; skipped where mounting is not permitted)', () => {
    let mounts: string[] = [];
    const canMount = (() => {
      if (process.platform !== 'linux') return false;
      const probe = spawnSync('sh', ['-c', 'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d"; s=$?; rmdir "$d"; exit $s'], {
        stdio: 'ignore',
      });
      return probe.status === 0;
    })();
    async function mount(options: string): Promise<string> {
      const dir = await scratch();
      const result = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { encoding: 'utf8' });
      if (result.status !== 0) throw new Error(`mount failed: ${result.stderr}`);
      mounts.push(dir);
      return dir;
    }
    afterAll(() => {
      for (const dir of mounts) spawnSync('umount', [dir]);
      mounts = [];
    });

    it.skipIf(!canMount)('a full disk: ENOSPC naming the checkpoint folder; the old checkpoint still loads', async () => {
      const disk = await mount('size=64k');
      const dir = nodePath.join(disk, 'ckpt');
      const small = version(1);
      await saveShardedSafetensors(dir, small);
      const big: Record<string, tf.Tensor> = { w0: tf.fill([40_000], 2) }; // 160 KB: does not fit
      const error = await saveShardedSafetensors(dir, big).then(() => null, (e: Error) => e);
      expect(error).toBeInstanceOf(WriteError);
      expect(error!.message).toContain(dir);
      expect(error!.message).toMatch(/full \(ENOSPC\)/);
      expect(await loadedVersion(dir)).toBe(1);
      expect(saveLeftovers(dir)).toEqual([]);
      tf.dispose([...Object.values(small), ...Object.values(big)]);
    });

    it.skipIf(!canMount)('a read-only file system: EROFS, also where recursive mkdir reports ENOENT', async () => {
      const disk = await mount('ro,size=64k');
      const t = version(1);
      const nested = nodePath.join(disk, 'a', 'b', 'ckpt');
      const error = await saveShardedSafetensors(nested, t).then(() => null, (e: Error) => e);
      expect(error).toBeInstanceOf(WriteError);
      expect(error!.message).toContain(nested);
      expect(error!.message).toMatch(/read-only file system \(EROFS\)/);
      const file = nodePath.join(disk, 'm.safetensors');
      const fileError = await saveSafetensors(file, t).then(() => null, (e: Error) => e);
      expect(fileError!.message).toContain(file);
      expect(fileError!.message).toMatch(/EROFS/);
      expect(fileError!.message).not.toMatch(/\.tmp-/);
      tf.dispose(Object.values(t));
    });
  });
});
