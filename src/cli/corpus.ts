import { createHash } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { existsSync, readFileSync, unlinkSync } from 'node:fs';
import type { CommandModule } from 'yargs';
import { replayRepro } from '../engine/replay.ts';
import { reproOracleFiles } from '../engine/select.ts';
import { looksLikeFile } from '../repro/plugin-paths.ts';
import { signature } from '../engine/run.ts';
import { type Repro, encodeRepro, reproForFile, writeFileAtomic } from '../repro/format.ts';
import { escapeTerminal } from '../report/escape.ts';
import { EXIT_FOUND, EXIT_OK, EXIT_USAGE, UsageError } from './errors.ts';
import { type ReproPluginArgs, reproPluginOptions } from './flags.ts';
import { EMPTY_CORPUS, forEachRepro } from './inputs.ts';
import { checkOutputDir, prepareOutputDir } from './outputs.ts';
import { reproFeatures } from './coverage.ts';

interface CorpusArgs extends ReproPluginArgs {
  action: 'check' | 'merge' | 'prune';
  dirs: string[];
  out?: string;
  coverage?: boolean;
}

interface Entry {
  file: string;
  repro: Repro;
  /** What makes two entries the same finding: the violation's signature, or the exact case. */
  key: string;
}

const selection = (args: CorpusArgs) => ({ files: args.oracle ?? [], hostPolicy: args.hostPolicy, guestPolicy: args.guestPolicy });

async function load(args: CorpusArgs): Promise<{ entries: Entry[]; bad: number; unmet: number }> {
  const entries: Entry[] = [];
  let unmet = 0;
  const bad = await forEachRepro(args.dirs, async (file, repro) => {
    const { result, met, mismatch } = await replayRepro(repro, selection(args));
    const first = result.violations[0];
    if (args.action === 'merge' && met === false) {
      if (repro.expect?.verdict === 'violation' && first === undefined) {
        // A finding that no longer fails (the bug was fixed): left out, and said. Kept, it would
        // name the policies it ran with (asMerged) and an expectation they no longer meet.
        console.log(escapeTerminal(`not merged  ${file}: ${mismatch ?? 'its expectation is not met'} (no longer fails)`));
        return;
      }
      // A clean file that now fails, or a finding that changed: a regression's witness is kept
      // and the merge fails, as corpus check would.
      unmet++;
      console.log(escapeTerminal(`FAIL  ${file}: ${mismatch ?? 'its expectation is not met'} (merged as it is)`));
    }
    const key = first ? signature(repro, first) : `clean|${createHash('sha256').update(encodeRepro({ ...repro, title: '' })).digest('hex')}`;
    entries.push({ file, repro, key });
  }, EMPTY_CORPUS);
  return { entries, bad, unmet };
}

/** Per key, the entry with the fewest ops (then the first file name): what merge and prune keep. */
function best(entries: readonly Entry[]): Map<string, Entry> {
  const kept = new Map<string, Entry>();
  for (const entry of entries) {
    const current = kept.get(entry.key);
    if (!current || entry.repro.ops.length < current.repro.ops.length) kept.set(entry.key, entry);
  }
  return kept;
}

/**
 * Where a merged entry goes: its own name, unless a different repro is already there (two shards
 * that both found `io-s2-rmp-size-1.json`), then the name with a hash of its content. Undefined
 * when the same content is already in the directory. A different repro is never overwritten.
 */
function mergeTarget(out: string, name: string, text: string): string | undefined {
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 10);
  for (const candidate of [name, name.replace(/(\.json)?$/, `-${hash}.json`)]) {
    const target = join(out, candidate);
    if (!existsSync(target)) return target;
    if (readFileSync(target, 'utf8') === text) return undefined;
  }
  throw new UsageError(`--out: "${join(out, name)}" and its content-named alternative both hold other repros`);
}

/**
 * `repro` as merge writes it: the plugins a flag replaced recorded as the flag names them (absolute
 * here, made relative to the merged file when it is written). A shard's findings name a policy
 * kept outside them by a path that means nothing once the artifact is downloaded elsewhere
 * (`../policies/my-host.ts` from shards/shard-0/findings/); merge ran each file with the flag's
 * policy, so that is the one its copy names. Oracles: the flag's files, and the file's own that
 * still load from inside its directory.
 */
function asMerged(repro: Repro, args: CorpusArgs): Repro {
  const named = (value: string): string => (looksLikeFile(value) ? resolve(value) : value);
  const config = { ...repro.config };
  if (args.hostPolicy !== undefined) config.hostPolicy = named(args.hostPolicy);
  if (args.guestPolicy !== undefined) config.guestPolicy = named(args.guestPolicy);
  const flagOracles = (args.oracle ?? []).map((file) => resolve(file));
  const merged: Repro = { ...repro, config };
  if (flagOracles.length > 0) merged.oracles = reproOracleFiles(repro, flagOracles);
  return merged;
}

/**
 * `corpus prune --coverage` (libFuzzer -merge=1, ClusterFuzzLite's prune): keeps the smallest set
 * of `expect: clean` files that reaches every feature (coverage.ts) the directory reaches, taking
 * the shortest first. A file that expects a violation (or states no expectation) is never touched,
 * and its features count as covered; a clean file that now fails stays for `corpus check` to show.
 */
async function pruneByCoverage(args: CorpusArgs): Promise<number> {
  const covered = new Set<string>();
  const candidates: { file: string; ops: number; features: Set<string> }[] = [];
  const bad = await forEachRepro(args.dirs, async (file, repro) => {
    const { features, verdict } = await reproFeatures(repro, args);
    if (repro.expect?.verdict === 'clean' && verdict === 'clean') candidates.push({ file, ops: repro.ops.length, features });
    else for (const feature of features) covered.add(feature);
  }, EMPTY_CORPUS);
  // A file that could not be read or replayed may hold the only copy of some coverage: prune
  // deletes nothing on what it could not see.
  if (bad > 0) return refuseToPrune(bad);
  candidates.sort((a, b) => a.ops - b.ops || (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  let removed = 0;
  for (const candidate of candidates) {
    const adds = [...candidate.features].filter((f) => !covered.has(f));
    if (adds.length > 0) {
      for (const feature of adds) covered.add(feature);
      continue;
    }
    unlinkSync(candidate.file);
    removed++;
    console.log(escapeTerminal(`removed ${candidate.file} (adds no coverage)`));
  }
  console.log(`pruned ${removed} file(s) that add no coverage, ${covered.size} features kept`);
  return EXIT_OK;
}

/** prune works in place: with an input it could not read, it removes nothing (exit 2). */
function refuseToPrune(bad: number): number {
  console.log(`pruned nothing: ${bad} file(s) could not be read or replayed (see above)`);
  return EXIT_USAGE;
}

async function corpus(args: CorpusArgs): Promise<number> {
  if (args.coverage && args.action !== 'prune') throw new UsageError(`corpus ${args.action}: --coverage applies to prune only`);
  // prune works in place: a user who expected a pruned copy in --out would lose files instead.
  if (args.out !== undefined && args.action !== 'merge') throw new UsageError(`corpus ${args.action}: --out applies to merge only (${args.action} works in place)`);
  if (args.coverage) return pruneByCoverage(args);
  if (args.action === 'check') {
    let failed = 0;
    const bad = await forEachRepro(args.dirs, async (file, repro) => {
      const outcome = await replayRepro(repro, selection(args));
      if (outcome.met === false) {
        failed++;
        console.log(escapeTerminal(`FAIL  ${file}: ${outcome.mismatch}`));
      } else console.log(escapeTerminal(`ok    ${file}${outcome.met === undefined ? ' (valid, no expectation)' : ''}`));
    });
    if (bad > 0) return EXIT_USAGE;
    return failed > 0 ? EXIT_FOUND : EXIT_OK;
  }
  if (args.action === 'merge') {
    if (!args.out) throw new UsageError('corpus merge: --out DIR is needed (the merged corpus)');
    checkOutputDir('--out', args.out);
  }
  const { entries, bad, unmet } = await load(args);
  const kept = best(entries);
  if (args.action === 'merge') {
    const out = args.out ?? '';
    // Made once the inputs are read: a wrong input path leaves no directory behind.
    prepareOutputDir('--out', out);
    let written = 0;
    for (const entry of kept.values()) {
      const source = entry.repro.source ?? entry.file;
      const repro = asMerged(entry.repro, args);
      const text = encodeRepro(reproForFile(repro, join(out, basename(entry.file)), dirname(source)));
      const target = mergeTarget(out, basename(entry.file), text);
      if (target === undefined) continue;
      writeFileAtomic(target, encodeRepro(reproForFile(repro, target, dirname(source))));
      written++;
    }
    console.log(escapeTerminal(`merged ${entries.length} file(s) into ${kept.size} in ${out} (${entries.length - kept.size} duplicate(s) dropped, ${written} written${unmet > 0 ? `; ${unmet} whose expectation is not met` : ''})`));
  } else {
    if (bad > 0) return refuseToPrune(bad);
    const keep = new Set([...kept.values()].map((e) => e.file));
    let removed = 0;
    for (const entry of entries) {
      if (keep.has(entry.file)) continue;
      unlinkSync(entry.file);
      removed++;
      console.log(escapeTerminal(`removed ${entry.file} (same finding as ${kept.get(entry.key)?.file ?? '?'})`));
    }
    console.log(`pruned ${removed} duplicate(s), ${keep.size} file(s) kept`);
  }
  // A finding left out because it no longer fails is said, not a failure (a nightly merge after a
  // fix moves on); a file merged with an unmet expectation fails the merge, as corpus check does.
  return bad > 0 ? EXIT_USAGE : unmet > 0 ? EXIT_FOUND : EXIT_OK;
}

export const corpusCommand: CommandModule<object, CorpusArgs> = {
  command: 'corpus <action> <dirs..>',
  describe: 'check (replay every expectation), merge shards, or prune duplicate findings (--coverage: files adding no coverage)',
  builder: (yargs) =>
    reproPluginOptions(yargs)
      .positional('action', { choices: ['check', 'merge', 'prune'] as const, demandOption: true, describe: 'what to do' })
      .positional('dirs', { type: 'string', array: true, demandOption: true, describe: 'corpus directories or files' })
      .option('out', { type: 'string', describe: 'merge: destination directory' })
      .option('coverage', { type: 'boolean', describe: 'prune: drop expect:clean files that add no coverage (never files expecting a violation)' })
      .example('$0 corpus check corpus/', 'replay every file and compare with its expect')
      .example('$0 corpus merge shard-*/ --out merged/', "merge nightly shards' findings and corpora, one file per bucket or content")
      .example('$0 corpus prune corpus/', 'delete files that duplicate another finding')
      .example('$0 corpus prune --coverage nightly-corpus/', 'keep the fewest clean files that reach the same coverage'),
  handler: async (args) => {
    process.exitCode = await corpus(args);
  },
};
