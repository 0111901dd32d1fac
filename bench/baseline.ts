// Issue 15's first done-when, measured in one run: the engine with every oracle on against commit
// baed79b on the same workload. baed79b's own bench workload (its bench/common.ts: cut-on-convert
// + linux-2m-pool, 64 steps, seed bench-2026, its 12 oracles, no interleaving) is generated in a
// checkout of baed79b made here (git archive into a temp directory), serialized as repro-style JSON
// and replayed unchanged in both trees by bench/replay-child.ts: this tree parses the cases with its
// own parser (config fields baed79b did not have take their defaults, no `during`) and keeps only
// the 12 oracles baed79b had. Each tree runs in its own long-lived child process (tsx from the
// sources, as `npm run bench` runs this tree), warmed up each way (WARM_ROUNDS), then
// measured in alternating rounds: every oracle, then raw replay (no oracle), the order of the two
// trees swapped every round.

import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { round } from './common.ts';

export const BASELINE_COMMIT = 'baed79b';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CHILD_NAME = 'replay-child.ts';

export interface BaselineOptions {
  commit?: string;
  /** Cases of the baseline workload (indices 0..cases-1). */
  cases: number;
  rounds: number;
  /** Each measurement repeats whole passes over the cases until this much wall clock. */
  minMs: number;
}

interface Side {
  opsPerSec: number;
  perRound: number[];
  /** Violations per pass over the cases (the same cases: a sanity check, not a goal). */
  findings: number;
}

export type BaselineResult =
  | { skipped: string }
  | {
      commit: string;
      workload: string;
      cases: number;
      opsPerPass: number;
      rounds: number;
      oracles: string[];
      /** How the baseline checkout got its dependencies. */
      install: string;
      baseline: { all: Side; raw: Side };
      current: { all: Side; raw: Side };
      /** current / baseline ops/s (goal for `all`: >= 30). */
      ratios: { all: number; raw: number };
      /** Oracle cost (raw / all ops/s) in each tree. */
      oracleCost: { baseline: number; current: number };
    };

/** One child: a tree's replay-child.ts under its own tsx loader, answering one line per command. */
class Replayer {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;
  private stderr = '';

  constructor(
    readonly tree: string,
    readonly label: string,
  ) {
    this.child = spawn(process.execPath, ['--conditions=cocofuzz-source', join(tree, 'bin/run-ts.js'), join(tree, 'bench', CHILD_NAME)], { cwd: tree });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (chunk: string) => (this.stderr = (this.stderr + chunk).slice(-2000)));
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  async ask<T>(command: Record<string, unknown>): Promise<T> {
    this.child.stdin.write(`${JSON.stringify(command)}\n`);
    const next = await this.lines.next();
    if (next.done) throw new Error(`${this.label} replay child ended: ${this.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    const reply = JSON.parse(next.value) as T & { error?: string };
    if (reply.error !== undefined) throw new Error(`${this.label} replay child: ${reply.error}`);
    return reply;
  }

  close(): void {
    this.child.stdin.end();
    this.child.kill();
  }
}

function git(args: string[]): { ok: boolean; out: Buffer; err: string } {
  const r = spawnSync('git', ['-C', ROOT, ...args], { maxBuffer: 256 * 1024 ** 2 });
  return { ok: r.status === 0, out: r.stdout ?? Buffer.alloc(0), err: (r.stderr ?? Buffer.alloc(0)).toString().trim() || String(r.error ?? '') };
}

/** name -> version of every package a lock file installs for production (dev ones left out). */
function productionLock(text: string): Map<string, string> {
  const lock = JSON.parse(text) as { packages?: Record<string, { version?: string; dev?: boolean }> };
  const out = new Map<string, string>();
  for (const [path, entry] of Object.entries(lock.packages ?? {})) if (path !== '' && entry.dev !== true && entry.version) out.set(path, entry.version);
  return out;
}

/**
 * The baseline checkout needs its runtime dependencies (tsx, fast-check, seedrandom, yargs). When
 * every production package of its lock file is locked here at the same version (this checkout's
 * node_modules is what its own lock file installed), this checkout's node_modules serves it
 * through a symlink; otherwise `npm ci` installs its own.
 */
function installDependencies(dir: string): string {
  const theirs = productionLock(readFileSync(join(dir, 'package-lock.json'), 'utf8'));
  const ours = productionLock(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
  const mismatch = [...theirs].find(([path, version]) => ours.get(path) !== version);
  if (mismatch === undefined && existsSync(join(ROOT, 'node_modules'))) {
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    return 'node_modules linked from this checkout (same production dependency versions)';
  }
  const r = spawnSync('npm', ['ci', '--prefer-offline', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npm ci in the ${BASELINE_COMMIT} checkout failed: ${(r.stderr || String(r.error)).trim().split('\n').slice(-3).join(' | ')}`);
  return `npm ci --omit=dev (${mismatch?.[0] ?? 'node_modules'} differs)`;
}

/**
 * The warm-up, each way, in rounds' worth of wall clock. With every oracle on the engine takes
 * seconds to reach its steady speed: 1 s passes over the 200 cases in one fresh process ran at
 * 6k, 17-29k, 31-51k, 35-54k, then 47-57k ops/s (2026-11-26): V8 tiering up a large code base, not
 * a cache of ours. A nightly campaign runs at the steady speed, so the rounds measure that.
 */
const WARM_ROUNDS = 4;

const tally = (): { ops: number; ms: number; perRound: number[]; findings: number } => ({ ops: 0, ms: 0, perRound: [], findings: 0 });

export async function benchBaseline(options: BaselineOptions): Promise<BaselineResult> {
  const commit = options.commit ?? BASELINE_COMMIT;
  if (!git(['cat-file', '-e', `${commit}^{commit}`]).ok) return { skipped: `commit ${commit} is not in this clone (a shallow clone?): no baseline` };
  const dir = mkdtempSync(join(os.tmpdir(), `cocofuzz-${commit}-`));
  const replayers: Replayer[] = [];
  try {
    const archive = git(['archive', '--format=tar', commit]);
    if (!archive.ok) throw new Error(`git archive ${commit}: ${archive.err}`);
    const untar = spawnSync('tar', ['-x', '-C', dir], { input: archive.out });
    if (untar.status !== 0) throw new Error(`tar -x of ${commit}: ${untar.stderr.toString().trim()}`);
    const install = installDependencies(dir);
    copyFileSync(fileURLToPath(new URL(`./${CHILD_NAME}`, import.meta.url)), join(dir, 'bench', CHILD_NAME));

    const base = new Replayer(dir, commit);
    replayers.push(base);
    const current = new Replayer(ROOT, 'current');
    replayers.push(current);
    const { cases } = await base.ask<{ cases: unknown[] }>({ cmd: 'generate', count: options.cases });
    const loaded = await base.ask<{ oracles: string[]; ops: number }>({ cmd: 'load', cases, warmMs: WARM_ROUNDS * options.minMs });
    const mine = await current.ask<{ oracles: string[]; ops: number }>({ cmd: 'load', cases, oracles: loaded.oracles, warmMs: WARM_ROUNDS * options.minMs });
    if (mine.ops !== loaded.ops) throw new Error(`the trees replay different op counts (${commit} ${loaded.ops}, current ${mine.ops}): not the same workload`);

    const t = { base: { all: tally(), raw: tally() }, current: { all: tally(), raw: tally() } };
    for (let r = 0; r < options.rounds; r++) {
      const order = r % 2 === 0 ? (['base', 'current'] as const) : (['current', 'base'] as const);
      for (const mode of ['all', 'raw'] as const) {
        for (const side of order) {
          const reply = await (side === 'base' ? base : current).ask<{ ops: number; ms: number; findings: number }>({ cmd: 'run', mode, minMs: options.minMs });
          const entry = t[side][mode];
          entry.ops += reply.ops;
          entry.ms += reply.ms;
          entry.findings = reply.findings;
          entry.perRound.push(round((reply.ops * 1000) / reply.ms));
        }
      }
    }
    const side = (e: ReturnType<typeof tally>): Side => ({ opsPerSec: round((e.ops * 1000) / e.ms), perRound: e.perRound, findings: e.findings });
    const result = { all: side(t.base.all), raw: side(t.base.raw) };
    const now = { all: side(t.current.all), raw: side(t.current.raw) };
    return {
      commit,
      workload: `${commit}'s bench workload: ${options.cases} cases (seed bench-2026, <= 64 ops, swarm), cut-on-convert + linux-2m-pool, default config, no interleaving, its ${loaded.oracles.length} oracles`,
      cases: options.cases,
      opsPerPass: loaded.ops,
      rounds: options.rounds,
      oracles: loaded.oracles,
      install,
      baseline: result,
      current: now,
      ratios: { all: round(now.all.opsPerSec / result.all.opsPerSec, 2), raw: round(now.raw.opsPerSec / result.raw.opsPerSec, 2) },
      oracleCost: { baseline: round(result.raw.opsPerSec / result.all.opsPerSec, 2), current: round(now.raw.opsPerSec / now.all.opsPerSec, 2) },
    };
  } finally {
    for (const r of replayers) r.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
