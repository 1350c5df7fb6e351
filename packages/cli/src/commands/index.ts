// Every command of the CLI, in the order `chimera --help` lists them.
import type { Command } from '../command';
import { summaryCommand } from './summary';
import { plotCommand } from './plot';
import { convertCommand } from './convert';
import { generateCommand } from './generate';

export const COMMANDS: readonly Command[] = [summaryCommand, plotCommand, convertCommand, generateCommand];
