// JUnit XML for CI dashboards: one test case per finding bucket (so one planted bug is one red
// test), one erroring case per oracle that threw (its checks stopped there: the campaign exits 2,
// and a dashboard must not show it green), or a single passing case when the campaign found
// nothing and every oracle ran. Everything user-controlled
// (messages, policy names, seeds) goes through escapeXml: escaped, ANSI codes removed.

import type { Bucket, CampaignOracleError } from '../engine/campaign.ts';
import { bucketOrigin, oracleErrorText } from './origin.ts';
import { escapeXml as x } from './escape.ts';

export interface JunitSummary {
  cases: number;
  seed: string;
  hostPolicy: string;
  guestPolicy: string;
  /** When the campaign started (ms since the epoch) and how long it ran. */
  startedAt: number;
  elapsedMs: number;
}

export function renderJunit(buckets: readonly Bucket[], summary: JunitSummary, oracleErrors: readonly CampaignOracleError[] = []): string {
  const name = `cocofuzz ${summary.hostPolicy} + ${summary.guestPolicy} (seed ${summary.seed})`;
  const time = (summary.elapsedMs / 1000).toFixed(3);
  // ISO 8601 without a zone, as the JUnit XSD's timestamp wants (UTC).
  const timestamp = new Date(summary.startedAt).toISOString().replace(/\.\d+Z$/, '');
  const errors = oracleErrors.map((error) => {
    const text = oracleErrorText(error);
    const body = `${text}\nthe oracle checked nothing after it${error.file ? `\nrepro: ${error.file}` : ''}`;
    return [
      `    <testcase classname="cocofuzz.oracle-error" name="${x(`${error.oracle} threw`)}" time="0">`,
      `      <error message="${x(text)}" type="oracle-error">${x(body)}</error>`,
      '    </testcase>',
    ].join('\n');
  });
  const cases =
    buckets.length === 0 && errors.length === 0
      ? [`    <testcase classname="cocofuzz" name="${x(`${summary.cases} cases, no findings`)}" time="${time}"/>`]
      : buckets.map((bucket) => {
          const body = `${bucket.violation.message}\nhits: ${bucket.hits}, first in ${bucketOrigin(bucket)}, ops: ${bucket.repro.ops.length} (shrunk from ${bucket.shrunkFrom})${bucket.file ? `\nrepro: ${bucket.file}` : ''}`;
          return [
            `    <testcase classname="cocofuzz.${x(bucket.oracle)}" name="${x(bucket.signature)}" time="0">`,
            `      <failure message="${x(bucket.violation.message)}" type="${x(bucket.oracle)}">${x(body)}</failure>`,
            '    </testcase>',
          ].join('\n');
        });
  const tests = Math.max(1, buckets.length + errors.length);
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="cocofuzz" tests="${tests}" failures="${buckets.length}" errors="${errors.length}" time="${time}">`,
    `  <testsuite name="${x(name)}" tests="${tests}" failures="${buckets.length}" errors="${errors.length}" skipped="0" time="${time}" timestamp="${timestamp}">`,
    ...cases,
    ...errors,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}
