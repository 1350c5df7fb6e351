// What a release would publish: the bumps the changesets ask for, and what `changeset status` and a dry-run
// `changeset version` (in a temporary copy, never in the repository) actually give.
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import semver from 'semver';
import { readManifest, REPO_ROOT, type PublishedPackage } from './workspace.js';

export type Bump = 'major' | 'minor' | 'patch';
const BUMP_ORDER: Bump[] = ['patch', 'minor', 'major'];

/** The largest bump each package's changesets ask for (`.changeset/*.md` front matter). */
export function askedBumps(root = REPO_ROOT): Map<string, Bump> {
  const asked = new Map<string, Bump>();
  const dir = join(root, '.changeset');
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.md') && f !== 'README.md')) {
    const text = readFileSync(join(dir, file), 'utf8');
    const front = /^---\r?\n([\s\S]*?)\r?\n---/.exec(text);
    if (!front) throw new Error(`.changeset/${file} has no front matter; expected '---' lines around "'<package>': <bump>"`);
    for (const line of front[1]!.split(/\r?\n/).filter((l) => l.trim())) {
      const m = /^\s*["']?([^"']+)["']?\s*:\s*(major|minor|patch|none)\s*$/.exec(line);
      if (!m) throw new Error(`.changeset/${file}: expected "'<package>': major|minor|patch", got ${JSON.stringify(line)}`);
      const [, name, bump] = m as unknown as [string, string, Bump | 'none'];
      if (bump === 'none') continue;
      const before = asked.get(name);
      if (!before || BUMP_ORDER.indexOf(bump) > BUMP_ORDER.indexOf(before)) asked.set(name, bump);
    }
  }
  return asked;
}

/** The version each package should get: its version bumped as asked, or unchanged when nothing is asked. */
export function expectedVersion(version: string, bump: Bump | undefined): string {
  if (!bump) return version;
  const next = semver.inc(version, bump);
  if (!next) throw new Error(`cannot bump version ${JSON.stringify(version)} by ${bump}; fix the package.json version`);
  return next;
}

/**
 * Peer ranges on other workspace packages that a release would get wrong. A range must hold the dependency's
 * current version (or changesets drops the link) and stop before its next major (`*` accepts any future breaking
 * release). A range the next release leaves (`^0.1.0` when the dependency goes to 0.2.0) shows in the dry run
 * instead: changesets answers it with a major of every dependent.
 */
export function peerRangeProblems(packages: PublishedPackage[]): string[] {
  const versions = new Map(packages.map((p) => [p.manifest.name, p.manifest.version]));
  const problems: string[] = [];
  for (const { manifest } of packages) {
    for (const [dep, range] of Object.entries(manifest.peerDependencies ?? {})) {
      const version = versions.get(dep);
      if (!version) continue;
      const where = `${manifest.name} peerDependencies["${dep}"] is ${JSON.stringify(range)}`;
      if (!semver.validRange(range)) problems.push(`${where}: not a semver range; use "^${semver.major(version)}"`);
      else if (!semver.satisfies(version, range)) problems.push(`${where}: does not contain ${dep}'s version ${version}`);
      else if (semver.satisfies(semver.inc(version, 'major')!, range)) {
        problems.push(`${where}: accepts ${dep}'s next major ${semver.inc(version, 'major')}; bound it, e.g. "^${semver.major(version)}"`);
      }
    }
  }
  return problems;
}

export interface DryRun {
  /** `changeset status --output`: package name -> bump type. */
  status: Map<string, string>;
  /** package.json versions after `changeset version`. */
  versions: Map<string, string>;
}

const changesetBin = (() => {
  const require = createRequire(import.meta.url);
  const manifest = require.resolve('@changesets/cli/package.json');
  const bin = (require(manifest) as { bin: Record<string, string> }).bin.changeset!;
  return join(dirname(manifest), bin);
})();

/** Every workspace folder the root package.json names (globs of the form `dir/*`, or plain folders). */
function workspaceDirs(root: string): string[] {
  const patterns = (readManifest(join(root, 'package.json')).workspaces as string[] | undefined) ?? [];
  return patterns.flatMap((pattern) => {
    if (!pattern.endsWith('/*')) return [pattern];
    const parent = pattern.slice(0, -2);
    return existsSync(join(root, parent)) ? readdirSync(join(root, parent)).map((name) => `${parent}/${name}`) : [];
  });
}

/**
 * Copies what changesets reads (the root and workspace manifests, `.changeset/`) into a temporary git
 * repository on `main`, runs `changeset status` and `changeset version` there, and returns what they gave.
 */
export async function dryRunRelease(root = REPO_ROOT): Promise<DryRun> {
  const copy = mkdtempSync(join(tmpdir(), 'chimera-release-'));
  try {
    cpSync(join(root, 'package.json'), join(copy, 'package.json'));
    cpSync(join(root, '.changeset'), join(copy, '.changeset'), { recursive: true });
    const dirs = workspaceDirs(root).filter((dir) => existsSync(join(root, dir, 'package.json')));
    for (const dir of dirs) {
      mkdirSync(join(copy, dir), { recursive: true });
      cpSync(join(root, dir, 'package.json'), join(copy, dir, 'package.json'));
    }
    // Asynchronous, so a test worker keeps answering vitest meanwhile.
    const run = promisify(execFile);
    const git = (...args: string[]) => run('git', args, { cwd: copy });
    await git('init', '-q', '-b', 'main');
    await git('add', '-A');
    await git('-c', 'user.name=release-check', '-c', 'user.email=release-check@localhost', 'commit', '-q', '-m', 'copy');
    const changeset = (...args: string[]) => run(process.execPath, [changesetBin, ...args], { cwd: copy });
    await changeset('status', '--output=status.json');
    const plan = JSON.parse(readFileSync(join(copy, 'status.json'), 'utf8')) as { releases: { name: string; type: string }[] };
    await changeset('version');
    const versions = new Map(dirs.map((dir) => readManifest(join(copy, dir, 'package.json'))).map((m) => [m.name, m.version]));
    return { status: new Map(plan.releases.map((r) => [r.name, r.type])), versions };
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}
