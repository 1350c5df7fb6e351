// A README's quick start as a user would paste it: the first runnable TypeScript block (with the blocks that
// continue it, docs/tools/snippets.ts's `<!-- snippet: ... -->` directives), as an ES module and as CommonJS.
import ts from 'typescript';

const FENCE = /^\s*(`{3,}|~{3,})\s*([\w+-]*)/;
const DIRECTIVE = /^\s*<!--\s*snippet:\s*(.*?)\s*-->\s*$/;

interface Block {
  code: string;
  directive: string | undefined;
}

function tsBlocks(markdown: string): Block[] {
  const lines = markdown.split(/\r?\n/);
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]!);
    if (!open) continue;
    const end = lines.findIndex((line, j) => j > i && line.trim().startsWith(open[1]!));
    if (end < 0) break;
    if (['ts', 'typescript'].includes(open[2]!)) {
      blocks.push({ code: lines.slice(i + 1, end).join('\n'), directive: DIRECTIVE.exec(lines[i - 1] ?? '')?.[1] });
    }
    i = end;
  }
  return blocks;
}

/** The README's quick start: its first TypeScript block not marked typecheck-only, joined with its continuations. */
export function quickStart(markdown: string, file: string): string {
  const blocks = tsBlocks(markdown);
  const first = blocks.findIndex((b) => b.directive !== 'typecheck-only' && b.directive !== 'continues');
  if (first < 0) {
    throw new Error(`${file} has no runnable TypeScript block; its quick start must be a \`\`\`ts block that runs as written`);
  }
  const parts = [blocks[first]!.code];
  for (const block of blocks.slice(first + 1)) {
    if (block.directive !== 'continues') break;
    parts.push(block.code);
  }
  return parts.join('\n');
}

/** The snippet with its types removed, as an ES module (top-level await and all). */
export function toEsm(code: string): string {
  return ts.transpileModule(code, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
  }).outputText;
}

/**
 * The snippet as CommonJS: each import becomes a require, and the rest runs in an async function (CommonJS has no
 * top-level await) whose failure exits non-zero.
 */
export function toCjs(code: string): string {
  const esm = toEsm(code);
  const source = ts.createSourceFile('snippet.mjs', esm, ts.ScriptTarget.ES2022, true);
  const requires: string[] = [];
  const body: string[] = [];
  for (const statement of source.statements) {
    if (!ts.isImportDeclaration(statement)) {
      body.push(statement.getFullText(source));
      continue;
    }
    const from = (statement.moduleSpecifier as ts.StringLiteral).text;
    const clause = statement.importClause;
    if (!clause) requires.push(`require(${JSON.stringify(from)});`);
    else if (clause.name) throw new Error(`quick start: a default import from '${from}'; Chimera packages have named exports only`);
    else if (clause.namedBindings && ts.isNamespaceImport(clause.namedBindings)) {
      requires.push(`const ${clause.namedBindings.name.text} = require(${JSON.stringify(from)});`);
    } else if (clause.namedBindings) {
      const names = clause.namedBindings.elements.map((e) => (e.propertyName ? `${e.propertyName.text}: ${e.name.text}` : e.name.text));
      requires.push(`const { ${names.join(', ')} } = require(${JSON.stringify(from)});`);
    }
  }
  return [
    '"use strict";',
    ...requires,
    '(async () => {',
    ...body,
    '})().catch((error) => {',
    '  console.error(error);',
    '  process.exit(1);',
    '});',
    '',
  ].join('\n');
}
