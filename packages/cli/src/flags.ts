// Typed reads of parsed flag values. A value of the wrong form is a UsageError naming the flag, what it expects and
// what it got, so the caller sees the usage and exit code 2 rather than a stack.
import { UsageError, type FlagValues } from './command';

export function stringFlag(values: FlagValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

export function stringList(values: FlagValues, name: string): string[] {
  const v = values[name];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map(String);
}

export function booleanFlag(values: FlagValues, name: string): boolean {
  return values[name] === true;
}

export function numberFlag(values: FlagValues, name: string, rule: { integer?: boolean; min?: number; max?: number; above?: number } = {}): number | undefined {
  const text = stringFlag(values, name);
  if (text === undefined) return undefined;
  const value = Number(text);
  const kind = rule.integer ? 'an integer' : 'a number';
  const bounds = [
    rule.min !== undefined ? `>= ${rule.min}` : '',
    rule.above !== undefined ? `> ${rule.above}` : '',
    rule.max !== undefined ? `<= ${rule.max}` : '',
  ].filter(Boolean);
  const ok =
    text.trim() !== '' &&
    Number.isFinite(value) &&
    (!rule.integer || Number.isInteger(value)) &&
    (rule.min === undefined || value >= rule.min) &&
    (rule.above === undefined || value > rule.above) &&
    (rule.max === undefined || value <= rule.max);
  if (!ok) throw new UsageError(`--${name} expects ${kind}${bounds.length ? ` ${bounds.join(' and ')}` : ''}, got ${JSON.stringify(text)}`);
  return value;
}

export function choiceFlag<T extends string>(values: FlagValues, name: string, choices: readonly T[]): T | undefined {
  const text = stringFlag(values, name);
  if (text === undefined) return undefined;
  if (!(choices as readonly string[]).includes(text)) {
    throw new UsageError(`--${name} expects one of ${choices.join(', ')}, got ${JSON.stringify(text)}`);
  }
  return text as T;
}
