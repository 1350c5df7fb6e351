// Runs typedoc's validation (the settings in each package's typedoc.json: notDocumented, notExported,
// invalidLink) over a published package without rendering, and returns every warning and error as one line.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  Application,
  Logger,
  LogLevel,
  ReflectionKind,
  TSConfigReader,
  TypeDocReader,
  type MinimalNode,
  type MinimalSourceFile,
  type ProjectReflection,
} from 'typedoc';

/** A logger that keeps warnings and errors (with file:line when typedoc gives a node) instead of printing them. */
class CollectingLogger extends Logger {
  readonly problems: string[] = [];

  override log(message: string, level: LogLevel): void {
    super.log(message, level);
    if (level >= LogLevel.Warn) this.problems.push(message);
  }

  protected override addContext(
    message: string,
    _level: Exclude<LogLevel, LogLevel.None>,
    ...args: [MinimalNode?] | [number, MinimalSourceFile]
  ): string {
    const [nodeOrPos, file] = args;
    if (typeof nodeOrPos === 'number' && file) return `${file.fileName}:${file.getLineAndCharacterOfPosition(nodeOrPos).line + 1}: ${message}`;
    if (nodeOrPos && typeof nodeOrPos === 'object') {
      const source = nodeOrPos.getSourceFile();
      const line = source.getLineAndCharacterOfPosition(nodeOrPos.getStart()).line + 1;
      return `${source.fileName}:${line}: ${message}`;
    }
    return message;
  }
}

/** What typedoc found in one package: its problems, and how many symbols the reference documents. */
export interface ApiDocReport {
  /** Every warning and error typedoc logged, one line each; empty when the reference is complete. */
  problems: string[];
  /** Declarations in the reference (exports and their members), so a test can tell an empty run from a clean one. */
  documentedCount: number;
}

/**
 * Converts and validates the package in `packageDir` with its `typedoc.json`, emitting nothing.
 * Needs the package's @chimera dependencies built (their types come from dist/).
 */
export async function checkApiDocs(packageDir: string): Promise<ApiDocReport> {
  const config = join(packageDir, 'typedoc.json');
  if (!existsSync(config)) {
    throw new Error(`checkApiDocs: expected ${config} (every published package has one); add it as the other packages do`);
  }
  const app = await Application.bootstrapWithPlugins({ options: config }, [new TypeDocReader(), new TSConfigReader()]);
  const logger = new CollectingLogger();
  logger.level = LogLevel.Warn;
  app.logger = logger;
  const project = await app.convert();
  if (!project) return { problems: [...logger.problems, `typedoc could not convert ${packageDir}`], documentedCount: 0 };
  app.validate(project);
  return { problems: logger.problems, documentedCount: countDeclarations(project) };
}

function countDeclarations(project: ProjectReflection): number {
  return project.getReflectionsByKind(ReflectionKind.SomeExport | ReflectionKind.SomeMember).length;
}
