// Every TypeScript snippet of README.md, docs/ and the package READMEs, type-checked in one tsc run against the
// built packages and run (one node process each) unless marked typecheck-only. A failure names file:line.
import { afterAll, beforeAll, describe, it } from 'vitest';
import {
  collectPrograms,
  formatProblem,
  runProgram,
  typecheckPrograms,
  writePrograms,
  type SnippetProblem,
  type SnippetWorkspace,
} from '../tools/snippets';

const programs = collectPrograms();
let workspace: SnippetWorkspace;
let typeProblems: Map<string, SnippetProblem[]>;

beforeAll(() => {
  workspace = writePrograms(programs);
  typeProblems = typecheckPrograms(workspace);
});
afterAll(() => workspace?.dispose());

describe.concurrent('docs snippets', () => {
  it('finds the snippets', ({ expect }) => {
    expect(programs.length).toBeGreaterThan(10);
  });
  for (const program of programs) {
    it(`${program.file}:${program.line} (${program.mode})`, async () => {
      const problems = [...typeProblems.get(program.id)!];
      if (problems.length === 0 && program.mode === 'run') {
        const problem = await runProgram(workspace, program);
        if (problem) problems.push(problem);
      }
      if (problems.length) throw new Error(problems.map(formatProblem).join('\n\n'));
    });
  }
});
