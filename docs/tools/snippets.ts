// Docs that run: every ```ts / ```typescript block of the repository's Markdown is type-checked against the built
// packages and run, so a README cannot drift from the API. Conventions (docs/contributing-docs.md):
//   <!-- snippet: typecheck-only -->  on the line before a block: deliberately partial, only type-checked;
//   <!-- snippet: continues -->       on the line before a block: joins the file's previous block into one program.
// All programs are type-checked (and compiled) as one TypeScript program; each runnable program then runs in its own node
// process, in a fresh empty folder, so relative paths it writes (runs/, checkpoints) land there.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export type SnippetDirective = 'typecheck-only' | 'continues';
export const SNIPPET_DIRECTIVES: readonly SnippetDirective[] = ['typecheck-only', 'continues'];

/** One fenced block as written. `line` is the 1-based Markdown line of its first code line. */
export interface SnippetBlock {
  file: string;
  line: number;
  code: string;
  directives: SnippetDirective[];
}

/** Blocks joined by `continues` into one program; typecheck-only when any of its blocks says so. */
export interface SnippetProgram {
  id: string;
  file: string;
  line: number;
  blocks: SnippetBlock[];
  mode: 'run' | 'typecheck-only';
}

/** A problem located in the Markdown: `docs/training.md:23: TS2304: Cannot find name 'model'.` */
export interface SnippetProblem {
  file: string;
  line: number;
  message: string;
}

export function formatProblem(p: SnippetProblem): string {
  return `${p.file}:${p.line}: ${p.message}`;
}

/** The repository root (this file is docs/tools/snippets.ts). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The Markdown files whose snippets must run: README.md, docs/**\/*.md and packages/*\/README.md. */
export function docFiles(root = REPO_ROOT): string[] {
  const files: string[] = [];
  if (existsSync(join(root, 'README.md'))) files.push('README.md');
  const walk = (dir: string): void => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.md')) files.push(path);
    }
  };
  if (existsSync(join(root, 'docs'))) walk('docs');
  if (existsSync(join(root, 'packages'))) {
    for (const pkg of readdirSync(join(root, 'packages')).sort()) {
      if (existsSync(join(root, 'packages', pkg, 'README.md'))) files.push(`packages/${pkg}/README.md`);
    }
  }
  return files.sort();
}

const FENCE = /^(\s*)(`{3,}|~{3,})\s*([\w+-]*)/;
const DIRECTIVE = /^\s*<!--\s*snippet:\s*(.*?)\s*-->\s*$/;
const TS_LANGS = new Set(['ts', 'typescript']);

/**
 * The TypeScript blocks of one Markdown text. A directive comment must be the line right before the fence;
 * an unknown directive is an error rather than a block that silently runs.
 */
export function extractBlocks(markdown: string, file: string): SnippetBlock[] {
  const lines = markdown.split(/\r?\n/);
  const blocks: SnippetBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]!);
    if (!open) continue;
    const [, indent, fence, lang] = open as unknown as [string, string, string, string];
    let end = i + 1;
    while (end < lines.length && !new RegExp(`^\\s*${fence[0]}{${fence.length},}\\s*$`).test(lines[end]!)) end++;
    if (TS_LANGS.has(lang.toLowerCase())) {
      const code = lines
        .slice(i + 1, end)
        .map((l) => (l.startsWith(indent) ? l.slice(indent.length) : l.trimStart()))
        .join('\n');
      blocks.push({ file, line: i + 2, code, directives: directivesBefore(lines, i, file) });
    }
    i = end;
  }
  return blocks;
}

function directivesBefore(lines: string[], fenceIndex: number, file: string): SnippetDirective[] {
  const match = fenceIndex > 0 ? DIRECTIVE.exec(lines[fenceIndex - 1]!) : null;
  if (!match) return [];
  const words = match[1]!.split(/[\s,]+/).filter(Boolean);
  for (const word of words) {
    if (!SNIPPET_DIRECTIVES.includes(word as SnippetDirective)) {
      throw new Error(
        `${file}:${fenceIndex}: unknown snippet directive '${word}'; expected ${SNIPPET_DIRECTIVES.map((d) => `'${d}'`).join(' or ')} ` +
          `(for example <!-- snippet: typecheck-only -->)`,
      );
    }
  }
  return words as SnippetDirective[];
}

/** Joins each file's blocks into programs: a `continues` block extends the program before it. */
export function programsOf(blocks: SnippetBlock[]): SnippetProgram[] {
  const programs: SnippetProgram[] = [];
  for (const block of blocks) {
    const previous = programs[programs.length - 1];
    if (block.directives.includes('continues')) {
      if (!previous || previous.file !== block.file) {
        throw new Error(
          `${block.file}:${block.line - 2}: <!-- snippet: continues --> but there is no earlier TypeScript block in this file to continue; remove the directive`,
        );
      }
      previous.blocks.push(block);
      if (block.directives.includes('typecheck-only')) previous.mode = 'typecheck-only';
      continue;
    }
    programs.push({
      id: `${block.file.replace(/[^A-Za-z0-9]+/g, '_')}_L${block.line}`,
      file: block.file,
      line: block.line,
      blocks: [block],
      mode: block.directives.includes('typecheck-only') ? 'typecheck-only' : 'run',
    });
  }
  return programs;
}

/** Every program of the given Markdown files (default: all of docFiles()). */
export function collectPrograms(root = REPO_ROOT, files = docFiles(root)): SnippetProgram[] {
  return files.flatMap((file) => programsOf(extractBlocks(readFileSync(join(root, file), 'utf8'), file)));
}

/** A program's source and, per generated line, where it came from in the Markdown. */
export function programSource(program: SnippetProgram): { source: string; origin: (generatedLine: number) => SnippetProblem['line'] } {
  const parts: string[] = [];
  const starts: { at: number; block: SnippetBlock }[] = [];
  let next = 1;
  for (const block of program.blocks) {
    starts.push({ at: next, block });
    parts.push(block.code);
    next += block.code.split('\n').length;
  }
  // `export {}` makes every program a module, so top-level await type-checks and programs cannot see each other.
  parts.push('export {};');
  const origin = (generatedLine: number): number => {
    let hit = starts[0]!;
    for (const s of starts) if (s.at <= generatedLine) hit = s;
    return hit.block.line + Math.min(generatedLine - hit.at, hit.block.code.split('\n').length - 1);
  };
  return { source: parts.join('\n') + '\n', origin };
}

export interface SnippetWorkspace {
  dir: string;
  programs: SnippetProgram[];
  dispose(): void;
}

/**
 * Writes the programs as .ts files into a fresh folder under docs/.tmp (inside the docs workspace, so imports
 * resolve to the workspace's built packages and the files are ES modules).
 */
export function writePrograms(programs: SnippetProgram[], base = join(REPO_ROOT, 'docs', '.tmp')): SnippetWorkspace {
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, 'snippets-'));
  mkdirSync(join(dir, 'src'));
  for (const program of programs) writeFileSync(join(dir, 'src', `${program.id}.ts`), programSource(program).source);
  // What a user's project would have: strict, Node's ESM resolution (package exports, explicit types conditions).
  const tsconfig = {
    compilerOptions: {
      target: 'ES2022',
      module: 'node16',
      moduleResolution: 'node16',
      lib: ['ES2022'],
      types: ['node'],
      strict: true,
      skipLibCheck: true,
      esModuleInterop: true,
      sourceMap: true,
      outDir: 'out',
      rootDir: 'src',
      noEmitOnError: false,
    },
    include: ['src'],
  };
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2));
  return { dir, programs, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * One TypeScript program over every snippet (type-check and compile to out/); problems keyed by program id.
 * Uses the compiler API rather than the tsc CLI: tsc reports no semantic error anywhere once one file has a
 * syntax error, so one broken snippet would hide every other snippet's type errors.
 */
export function typecheckPrograms(workspace: SnippetWorkspace): Map<string, SnippetProblem[]> {
  const configPath = join(workspace.dir, 'tsconfig.json');
  const config = ts.getParsedCommandLineOfConfigFile(configPath, {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    },
  })!;
  const program = ts.createProgram(config.fileNames, config.options);
  const byId = new Map<string, SnippetProblem[]>();
  for (const snippet of workspace.programs) {
    const source = program.getSourceFile(join(workspace.dir, 'src', `${snippet.id}.ts`));
    if (!source) throw new Error(`snippet program ${snippet.id} (${snippet.file}:${snippet.line}) is missing from the TypeScript program`);
    const diagnostics = [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)];
    const { origin } = programSource(snippet);
    byId.set(
      snippet.id,
      diagnostics.map((d) => ({
        file: snippet.file,
        line: origin(source.getLineAndCharacterOfPosition(d.start ?? 0).line + 1),
        message: `TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`,
      })),
    );
  }
  const global = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()];
  if (global.length) {
    throw new Error(`the snippets' TypeScript setup is broken: ${global.map((d) => ts.flattenDiagnosticMessageText(d.messageText, ' ')).join('; ')}`);
  }
  program.emit();
  return byId;
}

export interface RunOptions {
  /** Kills a program that takes longer (a hang, not a speed check). Default 300 s. */
  timeoutMs?: number;
  /** Extra environment variables. CI=1 is always set so progress bars stay off. */
  env?: Record<string, string>;
  /** Receives the program's stdout and stderr when it ends, pass or fail. */
  onOutput?: (output: string) => void;
}

/** Runs one compiled program with node in a fresh folder; resolves to the problem, or null when it exits 0. */
export function runProgram(workspace: SnippetWorkspace, program: SnippetProgram, options: RunOptions = {}): Promise<SnippetProblem | null> {
  const cwd = mkdtempSync(join(workspace.dir, `cwd-${program.id}-`));
  const script = join(workspace.dir, 'out', `${program.id}.js`);
  const { origin } = programSource(program);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--enable-source-maps', script], {
      cwd,
      env: { ...process.env, CI: '1', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timeoutMs = options.timeoutMs ?? 300_000;
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      rmSync(cwd, { recursive: true, force: true });
      options.onOutput?.(output);
      if (code === 0) return resolve(null);
      // The deepest frame inside the program names the Markdown line; otherwise the program's first line.
      const frame = new RegExp(`${escapeRegExp(program.id)}\\.ts:(\\d+)`).exec(output);
      const line = frame ? origin(Number(frame[1])) : program.line;
      const why = signal === 'SIGKILL' ? `killed after ${timeoutMs / 1000} s (a hang?)` : `exited with ${code ?? signal}`;
      resolve({ file: program.file, line, message: `${why}:\n${tail(output, 40)}` });
    });
  });
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** A path relative to the repository root, with forward slashes (for messages). */
export function repoPath(path: string, root = REPO_ROOT): string {
  return relative(root, path).split(sep).join('/');
}
