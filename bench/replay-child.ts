// A long-lived replay child for bench/baseline.ts. The same file runs in two trees: this checkout,
// and a checkout of an older commit (baed79b) that baseline.ts copies it into. So it imports only
// what both trees export under the same names and signatures (runCase, resolvePolicies,
// resolveOracles, parseConfig/encodeConfig, parseOp/encodeOp, and bench/common.ts's workload
// helpers): keep it that way, or the baseline side stops running.
//
// Protocol: one JSON command per line on stdin, one JSON answer per line on stdout.
//   { cmd: 'generate', count }          -> { cases }   this tree's bench workload, encoded as in a repro
//   { cmd: 'load', cases, oracles?, warmMs? }
//                                       -> { oracles, ops }  decode the cases with this tree's parser
//                                          (missing config fields take this tree's defaults), keep
//                                          only the named built-in oracles, warm up each way for
//                                          warmMs of wall clock (at least one pass)
//   { cmd: 'run', mode, minMs }         -> { ops, ms, passes, findings }  replay every loaded case,
//                                          every kept oracle ('all') or none ('raw'), pass after pass
//                                          until minMs of wall clock
// A command that fails answers { error }.

import { createInterface } from 'node:readline';
import type { Oracle } from '../src/api.ts';
import { type Policies, runCase } from '../src/engine/run.ts';
import { resolveOracles, resolvePolicies } from '../src/engine/select.ts';
import { encodeOp, parseOp } from '../src/ops/codec.ts';
import { encodeConfig, parseConfig } from '../src/ops/config.ts';
import type { Case } from '../src/ops/types.ts';
import { WORKLOAD_SEED, workloadCases, workloadConfig } from './common.ts';

interface EncodedCase {
  config: Record<string, unknown>;
  seed: string;
  ops: Record<string, unknown>[];
}

type Command = { cmd: 'generate'; count: number } | { cmd: 'load'; cases: EncodedCase[]; oracles?: string[]; warmMs?: number } | { cmd: 'run'; mode: 'all' | 'raw'; minMs: number };

let cases: Case[] = [];
let policies: Policies | undefined;
let oracles: Oracle[] = [];

function replay(kept: readonly Oracle[]): { ops: number; findings: number } {
  let ops = 0;
  let findings = 0;
  for (const testCase of cases) {
    const result = runCase(testCase, policies as Policies, { oracles: kept });
    ops += result.stepsRun;
    if (result.verdict === 'violation') findings++;
  }
  return { ops, findings };
}

/** Pass after pass over the loaded cases until minMs of wall clock (at least one pass). */
function passes(kept: readonly Oracle[], minMs: number): { ops: number; ms: number; passes: number; findings: number } {
  let ops = 0;
  let findings = 0;
  let count = 0;
  const started = performance.now();
  let ms: number;
  do {
    const pass = replay(kept);
    ops += pass.ops;
    findings += pass.findings;
    count++;
    ms = performance.now() - started;
  } while (ms < minMs);
  return { ops, ms, passes: count, findings: findings / count };
}

async function answer(command: Command): Promise<unknown> {
  switch (command.cmd) {
    case 'generate':
      return {
        cases: workloadCases(workloadConfig(), WORKLOAD_SEED, 0, command.count).map(
          (c): EncodedCase => ({ config: encodeConfig(c.config), seed: c.seed, ops: c.ops.map((op) => encodeOp(op)) }),
        ),
      };
    case 'load': {
      cases = command.cases.map((raw, i) => {
        const config = parseConfig(raw.config);
        return { config, seed: raw.seed, ops: raw.ops.map((op, j) => parseOp(op, `cases[${i}].ops[${j}]`, config)) };
      });
      const first = cases[0];
      if (!first) throw new Error('no cases to load');
      policies = await resolvePolicies(first.config.hostPolicy, first.config.guestPolicy);
      const all = await resolveOracles();
      const wanted = command.oracles;
      if (wanted) {
        const missing = wanted.filter((name) => !all.some((o) => o.name === name));
        if (missing.length > 0) throw new Error(`oracles missing in this tree: ${missing.join(', ')}`);
      }
      oracles = wanted ? all.filter((o) => wanted.includes(o.name)) : all;
      // Warm-up, not measured: each way for warmMs. A single pass (200 cases, about 0.2 s with every
      // oracle on) left V8 compiling through the first measured round, which came out about 25%
      // below the next two in every run of 2026-11-26.
      passes(oracles, command.warmMs ?? 0);
      const { ops, passes: count } = passes([], command.warmMs ?? 0);
      return { oracles: oracles.map((o) => o.name), ops: ops / count };
    }
    case 'run':
      return passes(command.mode === 'raw' ? [] : oracles, command.minMs);
  }
}

for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === '') continue;
  let reply: unknown;
  try {
    reply = await answer(JSON.parse(line) as Command);
  } catch (error) {
    reply = { error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
}
