// JUnit XML for CI dashboards: one test case per finding bucket (so one planted bug is one red
// test), or a single passing case when the campaign found nothing. Everything user-controlled
// (messages, policy names, seeds) goes through escapeXml: escaped, ANSI codes removed.

import type { Bucket } from '../engine/campaign.ts';
import { bucketOrigin } from './origin.ts';
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

export function renderJunit(buckets: readonly Bucket[], summary: JunitSummary): string {
  const name = `cocofuzz ${summary.hostPolicy} + ${summary.guestPolicy} (seed ${summary.seed})`;
  const time = (summary.elapsedMs / 1000).toFixed(3);
  // ISO 8601 without a zone, as the JUnit XSD's timestamp wants (UTC).
  const timestamp = new Date(summary.startedAt).toISOString().replace(/\.\d+Z$/, '');
  const cases =
    buckets.length === 0
      ? [`    <testcase classname="cocofuzz" name="${x(`${summary.cases} cases, no findings`)}" time="${time}"/>`]
      : buckets.map((bucket) => {
          const body = `${bucket.violation.message}\nhits: ${bucket.hits}, first in ${bucketOrigin(bucket)}, ops: ${bucket.repro.ops.length} (shrunk from ${bucket.shrunkFrom})${bucket.file ? `\nrepro: ${bucket.file}` : ''}`;
          return [
            `    <testcase classname="cocofuzz.${x(bucket.oracle)}" name="${x(bucket.signature)}" time="0">`,
            `      <failure message="${x(bucket.violation.message)}" type="${x(bucket.oracle)}">${x(body)}</failure>`,
            '    </testcase>',
          ].join('\n');
        });
  const tests = Math.max(1, buckets.length);
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="cocofuzz" tests="${tests}" failures="${buckets.length}" errors="0" time="${time}">`,
    `  <testsuite name="${x(name)}" tests="${tests}" failures="${buckets.length}" errors="0" skipped="0" time="${time}" timestamp="${timestamp}">`,
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}
