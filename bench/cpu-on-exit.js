// Preloaded (node --import) into the CLI processes bench/startup.ts spawns: at exit, writes the
// process's own CPU time (user + system, microseconds) as JSON to file descriptor 3, so start-up
// is also measured in CPU, which neighbours on a shared machine disturb far less than wall clock.
import { writeSync } from 'node:fs';

process.on('exit', () => {
  try {
    writeSync(3, JSON.stringify(process.cpuUsage()));
  } catch {
    // fd 3 not open: started by hand, nothing to report.
  }
});
