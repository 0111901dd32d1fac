// 'cocofuzz/vitest': fuzzProperty for use inside a test, and fuzzTest, which registers the test
// itself. vitest fixes a test's timeout when the test starts, so a campaign longer than the
// default 5 s has to be registered with its own timeout: fuzzTest derives it from the budget.

import { test } from 'vitest';
import { type FuzzPropertyOptions, fuzzProperty, propertyTimeMs } from './engine/property.ts';

export { DEFAULT_PROPERTY_TIME_MS, FuzzPropertyError, type FuzzPropertyOptions, OracleFailedError, fuzzProperty } from './engine/property.ts';

export interface FuzzTestOptions extends FuzzPropertyOptions {
  /** The test's timeout in ms; default: derived from the budget (see fuzzTestTimeout). */
  timeout?: number;
}

/** Room for shrinking and explaining a finding after the budget ran out. */
const SHRINK_ALLOWANCE_MS = 30_000;
/** With `runs` and no `time`: a generous cost per case on a loaded 2-core CI machine. */
const MS_PER_CASE = 500;

/** The timeout fuzzTest gives a test: its time budget (or runs x 500 ms) plus 30 s to shrink. */
export function fuzzTestTimeout(options: Pick<FuzzPropertyOptions, 'runs' | 'time'>): number {
  const budget = propertyTimeMs(options) ?? (options.runs ?? 0) * MS_PER_CASE;
  return budget + SHRINK_ALLOWANCE_MS;
}

/** Registers a vitest test that runs fuzzProperty(options) and fails with the explained repro. */
export function fuzzTest(name: string, options: FuzzTestOptions = {}): void {
  const { timeout, ...property } = options;
  test(name, async () => {
    await fuzzProperty(property);
  }, timeout ?? fuzzTestTimeout(property));
}
