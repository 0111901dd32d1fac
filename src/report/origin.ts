// Where a campaign first found a bucket, or where an oracle threw, in the words every report uses
// (the terminal, JUnit, SARIF, HTML).

import type { Bucket, CampaignOracleError } from '../engine/campaign.ts';

/** `case 17 (seed night/17)` (the global case number, what `fuzz --case` takes), or the corpus file whose replay failed. */
export function bucketOrigin(bucket: Pick<Bucket, 'firstCase' | 'replayOf' | 'repro'>): string {
  return bucket.replayOf !== undefined ? `corpus file ${bucket.replayOf}` : `case ${bucket.firstCase} (seed ${bucket.repro.seed})`;
}

/** `case 12` (the global case number), or the corpus file whose replay the oracle threw in. */
function oracleErrorOrigin(error: Partial<Pick<CampaignOracleError, 'case' | 'replayOf'>>): string {
  return error.replayOf !== undefined ? `corpus file ${error.replayOf}` : `case ${error.case ?? '?'}`;
}

/** An oracle error's facts, as the campaign log and the run record them. */
interface OracleErrorFacts extends Partial<Pick<CampaignOracleError, 'case' | 'replayOf'>> {
  oracle: string;
  step: number | string;
  message: string;
}

/** `no-psmash threw at step 3 of case 12: boom`: an oracle error in a campaign's reports. */
export function oracleErrorText(error: OracleErrorFacts): string {
  return `${error.oracle} threw at step ${error.step} of ${oracleErrorOrigin(error)}: ${error.message}`;
}

/** `no-psmash threw at step 3, and checked nothing after it: boom`: in the report of one case. */
export function caseOracleErrorText(error: Omit<OracleErrorFacts, 'case' | 'replayOf'>): string {
  return `${error.oracle} threw at step ${error.step}, and checked nothing after it: ${error.message}`;
}
