// A bench child process (started by runChild in common.ts with --expose-gc): reads one task as
// JSON on stdin, runs it, and answers with one JSON line { result, maxRss } on stdout.

import { resolveOracles } from '../src/engine/select.ts';
import { type TrialTask, runTrial } from './bug-trials.ts';
import { type ScaleTask, runScaleTask } from './scale.ts';

type Task = { kind: 'trials'; tasks: TrialTask[] } | ({ kind: 'scale' } & ScaleTask);

let input = '';
process.stdin.setEncoding('utf8');
for await (const chunk of process.stdin) input += chunk as string;
const task = JSON.parse(input) as Task;

let result: unknown;
if (task.kind === 'trials') {
  const oracles = await resolveOracles();
  result = task.tasks.map((trial) => runTrial(trial, oracles));
} else {
  result = await runScaleTask(task);
}
// maxRSS is in kilobytes.
process.stdout.write(`${JSON.stringify({ result, maxRss: process.resourceUsage().maxRSS * 1024 })}\n`);
