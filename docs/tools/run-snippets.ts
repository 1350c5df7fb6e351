// `npm run snippets -w @chimera-internal/docs [-- file.md ...]`: type-checks and runs the snippets of the given
// Markdown files (repo-relative; default: all of them) and prints each problem as file:line: error. --verbose
// also prints what each program wrote.
import { collectPrograms, docFiles, formatProblem, runProgram, typecheckPrograms, writePrograms } from './snippets';

const verbose = process.argv.includes('--verbose');
const files = process.argv.slice(2).filter((arg) => arg !== '--verbose');
const programs = collectPrograms(undefined, files.length ? files : docFiles());
const workspace = writePrograms(programs);
let failed = 0;
try {
  const typeProblems = typecheckPrograms(workspace);
  for (const program of programs) {
    const problems = [...typeProblems.get(program.id)!];
    if (problems.length === 0 && program.mode === 'run') {
      const problem = await runProgram(workspace, program, { onOutput: (out) => verbose && console.log(out.trimEnd()) });
      if (problem) problems.push(problem);
    }
    if (problems.length) failed++;
    console.log(`${problems.length ? 'FAIL' : 'ok  '} ${program.file}:${program.line} (${program.mode})`);
    for (const problem of problems) console.log(`  ${formatProblem(problem).replace(/\n/g, '\n  ')}`);
  }
} finally {
  workspace.dispose();
}
console.log(`${programs.length - failed} of ${programs.length} snippet programs pass`);
process.exit(failed ? 1 : 0);
