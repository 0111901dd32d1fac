// Headless Chromium (Debian's `chromium` package; .ci/run installs it when missing) for the tests
// that check what a browser makes of cocofuzz's HTML report and JUnit XML.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

export const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((path) => existsSync(path));

export interface Rendered {
  dom: string;
  /** Lines Chromium logged for the page's console (errors, warnings, CSP violations...). */
  console: string[];
  code: number | null;
}

/** Loads `file` headless and returns the DOM after load and the page's console lines. */
export function renderFile(file: string, extra: string[] = []): Rendered {
  if (!CHROMIUM) throw new Error('chromium is not installed (apt-get install -y chromium; .ci/run does it)');
  const result = spawnSync(
    CHROMIUM,
    ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--enable-logging=stderr', '--v=0', ...extra, '--dump-dom', pathToFileURL(file).href],
    { encoding: 'utf8', timeout: 180_000, maxBuffer: 64 * 1024 * 1024 },
  );
  const console = result.stderr.split('\n').filter((line) => line.includes(':CONSOLE'));
  return { dom: result.stdout, console, code: result.status };
}
