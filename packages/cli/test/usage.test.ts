// Every command answers --help on stdout with exit 0, and an unknown flag or a wrong number of paths with its
// usage on stderr and exit 2 (never a parse-error stack).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../src/commands/index';
import { assertBuilt, runChimera, tempFolder } from './run-cli';

const temp = tempFolder('usage');
beforeAll(assertBuilt);
afterAll(temp.remove);

describe('chimera usage', () => {
  it('lists every command with --help and exits 2 with the list on stderr when given none', () => {
    const help = runChimera(['--help'], temp.dir);
    expect(help.status).toBe(0);
    for (const command of COMMANDS) expect(help.stdout).toMatch(new RegExp(`^  ${command.name} +\\S`, 'm'));
    const none = runChimera([], temp.dir);
    expect(none.status).toBe(2);
    expect(none.stderr).toBe(help.stdout);
    const unknown = runChimera(['train'], temp.dir);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/^chimera: unknown command "train"; expected one of summary, plot, convert, generate/);
  });

  for (const command of COMMANDS) {
    it(`${command.name}: --help prints its usage; an unknown flag gives the usage on stderr and exit 2`, () => {
      const help = runChimera([command.name, '--help'], temp.dir);
      expect(help.status).toBe(0);
      expect(help.stdout).toBe(command.help);
      expect(help.stdout).toMatch(new RegExp(`^Usage: chimera ${command.name} `));
      const bad = runChimera([command.name, 'some/path', 'other/path', '--no-such-flag'], temp.dir);
      expect(bad.status).toBe(2);
      expect(bad.stdout).toBe('');
      expect(bad.stderr).toBe(`chimera ${command.name}: Unknown option '--no-such-flag'.\n\n${command.help}`);
    });
  }

  it('a wrong number of paths or a malformed value is a usage error too', () => {
    const missing = runChimera(['convert', 'only-one'], temp.dir);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/^chimera convert: expected 2 arguments \(<input> <output>\), got 1: only-one\n\nUsage: chimera convert /);
    const depth = runChimera(['summary', 'x.safetensors', '--depth', 'two'], temp.dir);
    expect(depth.status).toBe(2);
    expect(depth.stderr).toMatch(/^chimera summary: --depth expects an integer >= 1, got "two"\n\nUsage:/);
  });
});
