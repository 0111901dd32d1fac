// JUnit XML for CI dashboards: one test case per finding bucket (so one planted bug is one red
// test), or a single passing case when the campaign found nothing.

import type { Bucket } from '../engine/campaign.ts';
import { escapeXml as escape } from './escape.ts';

export function renderJunit(buckets: readonly Bucket[], summary: { cases: number; seed: string; hostPolicy: string; guestPolicy: string }): string {
  const name = `cocofuzz ${summary.hostPolicy} + ${summary.guestPolicy} (seed ${summary.seed})`;
  const cases =
    buckets.length === 0
      ? [`    <testcase classname="cocofuzz" name="${escape(`${summary.cases} cases, no findings`)}"/>`]
      : buckets.map((bucket) => {
          const body = `${bucket.violation.message}\nhits: ${bucket.hits}, first case: ${bucket.firstCase}, ops: ${bucket.repro.ops.length} (shrunk from ${bucket.shrunkFrom})${bucket.file ? `\nrepro: ${bucket.file}` : ''}`;
          return [
            `    <testcase classname="cocofuzz.${escape(bucket.oracle)}" name="${escape(bucket.signature)}">`,
            `      <failure message="${escape(bucket.violation.message)}" type="${escape(bucket.oracle)}">${escape(body)}</failure>`,
            '    </testcase>',
          ].join('\n');
        });
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites tests="${Math.max(1, buckets.length)}" failures="${buckets.length}">`,
    `  <testsuite name="${escape(name)}" tests="${Math.max(1, buckets.length)}" failures="${buckets.length}">`,
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}
