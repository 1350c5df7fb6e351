/**
 * Stop criteria for autoregressive decoding, judged per row so rows of a batch can finish at different steps,
 * and `FinishedRows`, which remembers finished rows and makes them emit padding afterwards.
 *
 * One decoding step, in order:
 *   const next = finished.padFinished(sampleTokensSync(processed), padTokenId);
 *   rows.forEach((row, b) => row.push(next[b]));
 *   finished.update(criteria.isDone({ tokens: rows, promptLengths }));
 *   if (finished.allFinished) break;
 * The token that triggers a stop (e.g. EOS) is kept; only later tokens of that row become padding.
 */

/** What stop criteria judge after each step: every row's ids so far and where its prompt ends. */
export interface StoppingState {
  /** Per row, every id so far: the prompt, then the generated tokens. */
  tokens: ReadonlyArray<ArrayLike<number>>;
  /** Prompt length per row, or one length for all rows; tokens after it count as generated. */
  promptLengths: number | readonly number[];
}

/** Decides per row whether decoding should stop after the row's last token. */
export interface StoppingCriterion {
  /** Per row: true when that row should stop now (after its last token). */
  isDone(state: StoppingState): boolean[];
}

/** Stops a row once it has generated `maxNewTokens` tokens. */
export class MaxNewTokensCriterion implements StoppingCriterion {
  /** @param maxNewTokens Generated tokens allowed per row (a positive integer). */
  constructor(readonly maxNewTokens: number) {
    checkCount(maxNewTokens, 'MaxNewTokensCriterion', 'maxNewTokens');
  }

  isDone(state: StoppingState): boolean[] {
    return state.tokens.map((_, b) => generatedCount(state, b) >= this.maxNewTokens);
  }
}

/** Stops a row once it holds `maxLength` tokens in total (prompt included). */
export class MaxLengthCriterion implements StoppingCriterion {
  /** @param maxLength Total tokens allowed per row, prompt included. */
  constructor(readonly maxLength: number) {
    checkCount(maxLength, 'MaxLengthCriterion', 'maxLength');
  }

  isDone(state: StoppingState): boolean[] {
    return state.tokens.map((row) => row.length >= this.maxLength);
  }
}

/** Stops a row when its last generated token is one of `stopTokenIds` (EOS, end-of-turn, end-of-image). */
export class StopTokensCriterion implements StoppingCriterion {
  /** Ids that end a row (EOS, end-of-turn, ...). */
  readonly stopTokenIds: ReadonlySet<number>;

  constructor(stopTokenIds: readonly number[]) {
    if (stopTokenIds.length === 0) throw new Error('StopTokensCriterion: expected at least one stop token id, got none');
    this.stopTokenIds = new Set(stopTokenIds);
  }

  isDone(state: StoppingState): boolean[] {
    // A prompt that happens to end in a stop token does not count: only generated tokens stop a row.
    return state.tokens.map((row, b) => generatedCount(state, b) > 0 && this.stopTokenIds.has(row[row.length - 1]!));
  }
}

/**
 * Stops a row when its tokens end with one of the id sequences. The match must end on a generated token but
 * may start inside the prompt (a stop sequence "\n\n" completes when the prompt ends in "\n").
 */
export class StopSequencesCriterion implements StoppingCriterion {
  /** Id sequences that end a row when its tokens end with one. */
  readonly sequences: readonly (readonly number[])[];

  constructor(sequences: readonly (readonly number[])[]) {
    if (sequences.length === 0 || sequences.some((s) => s.length === 0)) {
      throw new Error('StopSequencesCriterion: expected one or more non-empty token-id sequences');
    }
    this.sequences = sequences.map((s) => [...s]);
  }

  isDone(state: StoppingState): boolean[] {
    return state.tokens.map((row, b) => generatedCount(state, b) > 0 && this.sequences.some((s) => endsWith(row, s)));
  }
}

/** Stops a row as soon as any of the criteria stops it. */
export class AnyOfCriteria implements StoppingCriterion {
  /** The combined criteria. */
  readonly criteria: readonly StoppingCriterion[];

  constructor(criteria: readonly StoppingCriterion[]) {
    this.criteria = [...criteria];
  }

  isDone(state: StoppingState): boolean[] {
    const done = state.tokens.map(() => false);
    for (const criterion of this.criteria) {
      const verdict = criterion.isDone(state);
      if (verdict.length !== done.length) {
        throw new Error(`AnyOfCriteria: a criterion answered for ${verdict.length} rows, expected ${done.length}`);
      }
      verdict.forEach((d, b) => (done[b] = done[b]! || d));
    }
    return done;
  }
}

/** `new AnyOfCriteria(criteria)`. */
export function stopWhenAny(...criteria: StoppingCriterion[]): AnyOfCriteria {
  return new AnyOfCriteria(criteria);
}

/** Options of {@link buildStoppingCriteria}; give at least one length limit. */
export interface StoppingOptions {
  /** Generated tokens allowed per row. */
  maxNewTokens?: number;
  /** Total tokens allowed per row, prompt included. */
  maxLength?: number;
  /** Ids that end a row (kept in the output). */
  stopTokenIds?: readonly number[];
  /** Id sequences that end a row when its tokens end with one. */
  stopSequences?: readonly (readonly number[])[];
}

/** The criteria the options ask for, combined with any-of. Asks for at least one length limit. */
export function buildStoppingCriteria(options: StoppingOptions): AnyOfCriteria {
  if (options.maxNewTokens === undefined && options.maxLength === undefined) {
    throw new Error('buildStoppingCriteria: set maxNewTokens or maxLength, otherwise generation may never stop');
  }
  const criteria: StoppingCriterion[] = [];
  if (options.maxNewTokens !== undefined) criteria.push(new MaxNewTokensCriterion(options.maxNewTokens));
  if (options.maxLength !== undefined) criteria.push(new MaxLengthCriterion(options.maxLength));
  if (options.stopTokenIds && options.stopTokenIds.length > 0) criteria.push(new StopTokensCriterion(options.stopTokenIds));
  if (options.stopSequences && options.stopSequences.length > 0) criteria.push(new StopSequencesCriterion(options.stopSequences));
  return new AnyOfCriteria(criteria);
}

/** Which rows of a batch have finished; finished rows stay finished and emit padding. */
export class FinishedRows {
  private readonly done: boolean[];
  private readonly stepsWhenDone: (number | null)[];
  private steps = 0;

  /** @param batchSize Rows of the batch. */
  constructor(readonly batchSize: number) {
    checkCount(batchSize, 'FinishedRows', 'batchSize');
    this.done = new Array<boolean>(batchSize).fill(false);
    this.stepsWhenDone = new Array<number | null>(batchSize).fill(null);
  }

  /** Per row: finished? */
  get finished(): readonly boolean[] {
    return this.done;
  }

  /** True when every row has finished. */
  get allFinished(): boolean {
    return this.done.every((d) => d);
  }

  /**
   * Per row, the number of `update` calls (= generated tokens, with one update per step) up to and including
   * the one that finished it, or null while it runs: the row's real length before its padding.
   */
  get generatedWhenFinished(): readonly (number | null)[] {
    return this.stepsWhenDone;
  }

  /** A copy of `tokens` with the rows that finished on an earlier step replaced by `padTokenId`. */
  padFinished(tokens: readonly number[], padTokenId: number): number[] {
    this.checkRows(tokens.length, 'padFinished');
    return tokens.map((t, b) => (this.done[b] ? padTokenId : t));
  }

  /** Records one step's verdicts (sticky: a finished row never resumes). */
  update(done: readonly boolean[]): void {
    this.checkRows(done.length, 'update');
    this.steps++;
    done.forEach((d, b) => {
      if (d && !this.done[b]) {
        this.done[b] = true;
        this.stepsWhenDone[b] = this.steps;
      }
    });
  }

  private checkRows(given: number, method: string): void {
    if (given !== this.batchSize) {
      throw new Error(`FinishedRows.${method}: expected one entry per row (${this.batchSize}), got ${given}`);
    }
  }
}

/** How many tokens row b has generated beyond its prompt. */
export function generatedCount(state: StoppingState, row: number): number {
  const promptLength = typeof state.promptLengths === 'number' ? state.promptLengths : state.promptLengths[row];
  if (promptLength === undefined) {
    throw new Error(`stopping: no prompt length for row ${row}; give one per row (${state.tokens.length}) or a single number`);
  }
  return state.tokens[row]!.length - promptLength;
}

function endsWith(row: ArrayLike<number>, suffix: readonly number[]): boolean {
  if (suffix.length > row.length) return false;
  const start = row.length - suffix.length;
  for (let i = 0; i < suffix.length; i++) if (row[start + i] !== suffix[i]) return false;
  return true;
}

function checkCount(value: number, who: string, name: string): void {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${who}: expected an integer ${name} >= 1, got ${value}`);
}
