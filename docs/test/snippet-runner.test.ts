// The runner itself: directives, joined programs, and problems reported at the Markdown line that caused them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  extractBlocks,
  formatProblem,
  programsOf,
  runProgram,
  typecheckPrograms,
  writePrograms,
  type SnippetProblem,
  type SnippetProgram,
  type SnippetWorkspace,
} from '../tools/snippets';

// Line numbers below are this text's own (line 1 is '# Guide').
const markdown = [
  '# Guide', //                                   1
  '```ts', //                                     2
  'const a: number = 1;', //                      3
  '```', //                                       4
  '<!-- snippet: continues -->', //               5
  '```typescript', //                             6
  'if (a + 1 !== 2) throw new Error("sum");', //  7
  '```', //                                       8
  '<!-- snippet: typecheck-only -->', //          9
  '```ts', //                                    10
  'declare const model: { fit(): void };', //    11
  'model.fit();', //                             12
  '```', //                                      13
  '```ts', //                                    14
  'const ok = 1;', //                            15
  'const bad: string = ok;', //                  16
  '```', //                                      17
  '- a list item', //                            18
  '  ```ts', //                                  19
  '  const n = [1, 2].length;', //               20
  '  if (n === 2) throw new Error(`boom ${n}`);', // 21
  '  ```', //                                    22
  '```sh', //                                    23
  'npm test', //                                 24
  '```', //                                      25
].join('\n');

describe('snippet extraction', () => {
  it('finds ts and typescript blocks with their first code line and directives', () => {
    const blocks = extractBlocks(markdown, 'guide.md');
    expect(blocks.map((b) => [b.line, b.directives])).toEqual([
      [3, []],
      [7, ['continues']],
      [11, ['typecheck-only']],
      [15, []],
      [20, []],
    ]);
    expect(blocks[4]!.code).toBe('const n = [1, 2].length;\nif (n === 2) throw new Error(`boom ${n}`);');
  });

  it('joins continues blocks into one program and keeps typecheck-only ones out of the runs', () => {
    const programs = programsOf(extractBlocks(markdown, 'guide.md'));
    expect(programs.map((p) => [p.line, p.blocks.length, p.mode])).toEqual([
      [3, 2, 'run'],
      [11, 1, 'typecheck-only'],
      [15, 1, 'run'],
      [20, 1, 'run'],
    ]);
  });

  it('refuses an unknown directive and a continues with nothing before it, naming the line', () => {
    expect(() => extractBlocks('<!-- snippet: typecheck only -->\n```ts\nx\n```', 'a.md')).toThrow(/a\.md:1: unknown snippet directive 'typecheck'/);
    expect(() => programsOf(extractBlocks('text\n<!-- snippet: continues -->\n```ts\nx\n```', 'b.md'))).toThrow(/b\.md:2: .*no earlier TypeScript block/);
  });
});

describe('snippet checks', () => {
  let workspace: SnippetWorkspace;
  let programs: SnippetProgram[];
  let typeProblems: Map<string, SnippetProblem[]>;
  beforeAll(() => {
    programs = programsOf(extractBlocks(markdown, 'guide.md'));
    workspace = writePrograms(programs);
    typeProblems = typecheckPrograms(workspace);
  });
  afterAll(() => workspace?.dispose());

  it('reports a type error at its Markdown line and passes the others', () => {
    expect(programs.map((p) => typeProblems.get(p.id)!.map(formatProblem))).toEqual([
      [],
      [],
      [expect.stringMatching(/^guide\.md:16: TS2322: Type 'number' is not assignable to type 'string'/)],
      [],
    ]);
  });

  it('runs a joined program to success and reports a throw at its Markdown line', async () => {
    expect(await runProgram(workspace, programs[0]!)).toBeNull();
    const problem = await runProgram(workspace, programs[3]!);
    expect(problem && formatProblem(problem)).toMatch(/^guide\.md:21: exited with 1:[\s\S]*boom 2/);
  });
});
