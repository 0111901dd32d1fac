import { createHash } from 'node:crypto';
import { basename, join } from 'node:path';
import { mkdirSync, unlinkSync } from 'node:fs';
import type { CommandModule } from 'yargs';
import { replayRepro } from '../engine/replay.ts';
import { signature } from '../engine/run.ts';
import { type Repro, encodeRepro, writeFileAtomic } from '../repro/format.ts';
import { EXIT_FOUND, EXIT_OK, EXIT_USAGE, UsageError } from './errors.ts';
import { forEachRepro } from './inputs.ts';

interface CorpusArgs {
  action: 'check' | 'merge' | 'prune';
  dirs: string[];
  out?: string;
}

interface Entry {
  file: string;
  repro: Repro;
  /** What makes two entries the same finding: the violation's signature, or the exact case. */
  key: string;
}

async function load(paths: readonly string[]): Promise<{ entries: Entry[]; bad: number }> {
  const entries: Entry[] = [];
  const bad = await forEachRepro(paths, async (file, repro) => {
    const { result } = await replayRepro(repro);
    const first = result.violations[0];
    const key = first ? signature(repro, first) : `clean|${createHash('sha256').update(encodeRepro({ ...repro, title: '' })).digest('hex')}`;
    entries.push({ file, repro, key });
  });
  return { entries, bad };
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

async function corpus(args: CorpusArgs): Promise<number> {
  if (args.action === 'check') {
    let failed = 0;
    const bad = await forEachRepro(args.dirs, async (file, repro) => {
      const outcome = await replayRepro(repro);
      if (outcome.met === false) {
        failed++;
        console.log(`FAIL  ${file}: ${outcome.mismatch}`);
      } else console.log(`ok    ${file}${outcome.met === undefined ? ' (valid, no expectation)' : ''}`);
    });
    if (bad > 0) return EXIT_USAGE;
    return failed > 0 ? EXIT_FOUND : EXIT_OK;
  }
  const { entries, bad } = await load(args.dirs);
  const kept = best(entries);
  if (args.action === 'merge') {
    if (!args.out) throw new UsageError('corpus merge: --out DIR is needed (the merged corpus)');
    mkdirSync(args.out, { recursive: true });
    for (const entry of kept.values()) writeFileAtomic(join(args.out, basename(entry.file)), encodeRepro(entry.repro));
    console.log(`merged ${entries.length} file(s) into ${kept.size} in ${args.out} (${entries.length - kept.size} duplicate(s) dropped)`);
  } else {
    const keep = new Set([...kept.values()].map((e) => e.file));
    let removed = 0;
    for (const entry of entries) {
      if (keep.has(entry.file)) continue;
      unlinkSync(entry.file);
      removed++;
      console.log(`removed ${entry.file} (same finding as ${kept.get(entry.key)?.file ?? '?'})`);
    }
    console.log(`pruned ${removed} duplicate(s), ${keep.size} file(s) kept`);
  }
  return bad > 0 ? EXIT_USAGE : EXIT_OK;
}

export const corpusCommand: CommandModule<object, CorpusArgs> = {
  command: 'corpus <action> <dirs..>',
  describe: 'check (replay every expectation), merge shards, or prune duplicate findings',
  builder: (yargs) =>
    yargs
      .positional('action', { choices: ['check', 'merge', 'prune'] as const, demandOption: true, describe: 'what to do' })
      .positional('dirs', { type: 'string', array: true, demandOption: true, describe: 'corpus directories or files' })
      .option('out', { type: 'string', describe: 'merge: destination directory' })
      .example('$0 corpus check corpus/', 'replay every file and compare with its expect')
      .example('$0 corpus merge shard-*/ --out merged/', "merge nightly shards' findings, one file per bucket")
      .example('$0 corpus prune corpus/', 'delete files that duplicate another finding'),
  handler: async (args) => {
    process.exitCode = await corpus(args);
  },
};
