// SARIF 2.1.0 for code scanning (GitHub's upload-sarif and others): one result per finding bucket,
// the oracle as the rule, the violation's message, the repro file as the artifact location. The
// bucket signature is the partial fingerprint, so a bucket found again on another night is the
// same alert, not a new one. An oracle that threw makes the run unsuccessful
// (invocations[].executionSuccessful false, with a notification): it checked nothing after.

import { createHash } from 'node:crypto';
import { relative, sep } from 'node:path';
import type { Severity } from '../api.ts';
import type { Bucket, CampaignOracleError } from '../engine/campaign.ts';
import { bucketOrigin, oracleErrorText } from './origin.ts';
import { plainText } from './escape.ts';

export interface SarifRule {
  name: string;
  description: string;
  severity: Severity;
}

export interface SarifSummary {
  version: string;
  seed: string;
  cases: number;
  hostPolicy: string;
  guestPolicy: string;
  startedAt: number;
  elapsedMs: number;
  /** Repro paths are written relative to this directory (the repository root in CI). */
  baseDir: string;
}

const level = (severity: Severity): 'error' | 'warning' => (severity === 'liveness' ? 'warning' : 'error');

/** A path as a relative URI reference with forward slashes, each segment percent-encoded. */
function uriOf(file: string, baseDir: string): string {
  return relative(baseDir, file).split(sep).map(encodeURIComponent).join('/');
}

export function renderSarif(buckets: readonly Bucket[], rules: readonly SarifRule[], summary: SarifSummary, oracleErrors: readonly CampaignOracleError[] = []): string {
  // Rules for the oracles that fired (policy-error included), in a stable order.
  const used = [...new Set(buckets.map((b) => b.oracle))].sort();
  const ruleList = used.map((name) => rules.find((r) => r.name === name) ?? { name, description: name, severity: 'correctness' as const });
  const results = buckets.map((bucket) => ({
    ruleId: bucket.oracle,
    ruleIndex: used.indexOf(bucket.oracle),
    level: level(bucket.violation.severity),
    message: {
      text: plainText(
        `${bucket.violation.message} (${bucket.hits} hit(s), first in ${bucketOrigin(bucket)}; ${bucket.repro.ops.length} ops after shrinking)`,
      ),
    },
    ...(bucket.file
      ? { locations: [{ physicalLocation: { artifactLocation: { uri: uriOf(bucket.file, summary.baseDir), uriBaseId: '%SRCROOT%' }, region: { startLine: 1 } } }] }
      : {}),
    partialFingerprints: { cocofuzzBucket: createHash('sha256').update(bucket.signature).digest('hex') },
    properties: { signature: plainText(bucket.signature), hits: bucket.hits, firstCase: bucket.firstCase, seed: plainText(bucket.repro.seed) },
  }));
  const document = {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'cocofuzz',
            version: summary.version,
            informationUri: 'https://www.npmjs.com/package/cocofuzz',
            rules: ruleList.map((rule) => ({
              id: rule.name,
              name: rule.name,
              shortDescription: { text: plainText(rule.description) },
              defaultConfiguration: { level: level(rule.severity) },
              properties: { tags: [rule.severity] },
            })),
          },
        },
        invocations: [
          {
            executionSuccessful: oracleErrors.length === 0,
            ...(oracleErrors.length > 0
              ? {
                  toolExecutionNotifications: oracleErrors.map((error) => ({
                    level: 'error',
                    message: { text: plainText(`oracle ${oracleErrorText(error)}; it checked nothing after`) },
                    descriptor: { id: 'oracle-error' },
                    ...(error.file ? { locations: [{ physicalLocation: { artifactLocation: { uri: uriOf(error.file, summary.baseDir), uriBaseId: '%SRCROOT%' } } }] } : {}),
                  })),
                }
              : {}),
            startTimeUtc: new Date(summary.startedAt).toISOString(),
            endTimeUtc: new Date(summary.startedAt + summary.elapsedMs).toISOString(),
            properties: { seed: plainText(summary.seed), cases: summary.cases, hostPolicy: plainText(summary.hostPolicy), guestPolicy: plainText(summary.guestPolicy) },
          },
        ],
        results,
      },
    ],
  };
  return `${JSON.stringify(document, null, 2)}\n`;
}
