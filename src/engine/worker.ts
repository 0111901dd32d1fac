// A campaign worker thread: prepares the runner once, then runs the case indices the main thread
// sends, one message each way per case.

import { parentPort, workerData } from 'node:worker_threads';
import { type CampaignJob, prepareRunner, runCampaignCase } from './case-job.ts';

const job = workerData as CampaignJob;
const port = parentPort;
if (!port) throw new Error('worker.ts must run in a worker thread');

const runner = await prepareRunner(job);
port.on('message', (index: number | null) => {
  if (index === null) {
    port.close();
    return;
  }
  try {
    port.postMessage({ outcome: runCampaignCase(job, runner, index) });
  } catch (error) {
    port.postMessage({ index, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
  }
});
port.postMessage({ ready: true });
