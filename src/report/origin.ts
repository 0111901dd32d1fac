// Where a campaign first found a bucket, in the words every report uses (JUnit, SARIF, HTML).

import type { Bucket } from '../engine/campaign.ts';

/** `case 17 (seed night/17)` (the global case number, what `fuzz --case` takes), or the corpus file whose replay failed. */
export function bucketOrigin(bucket: Pick<Bucket, 'firstCase' | 'replayOf' | 'repro'>): string {
  return bucket.replayOf !== undefined ? `corpus file ${bucket.replayOf}` : `case ${bucket.firstCase} (seed ${bucket.repro.seed})`;
}
