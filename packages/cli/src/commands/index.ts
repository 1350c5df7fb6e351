import type { Command } from '../command';
import { summaryCommand } from './summary';
import { plotCommand } from './plot';
import { convertCommand } from './convert';
import { generateCommand } from './generate';

/** Every command of the CLI, in the order `chimera --help` lists them. */
export const COMMANDS: readonly Command[] = [summaryCommand, plotCommand, convertCommand, generateCommand];
