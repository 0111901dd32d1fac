// The JSON-lines schema shared by `fuzz --json`, `fuzz`'s campaign.jsonl and `replay --json`:
// every line is one object with `schema` (this version) and `type`. A reader that meets a schema it
// does not know stops instead of guessing; new fields may be added within a version, a field is
// never renamed or retyped without a new version. README.md, "JSON lines", lists the types.

import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../ops/errors.ts';
import { readRegularFile, writeFileAtomic } from '../repro/format.ts';
import { safeJson } from './escape.ts';

export const LOG_SCHEMA = 'cocofuzz-log/1';
export const CAMPAIGN_LOG = 'campaign.jsonl';

export type LogType = 'start' | 'finding' | 'progress' | 'oracle-error' | 'summary' | 'case' | 'result' | 'step';

export interface LogLine {
  schema: typeof LOG_SCHEMA;
  type: LogType;
  [field: string]: unknown;
}

export function logLine(type: LogType, fields: Record<string, unknown>): LogLine {
  return { schema: LOG_SCHEMA, type, ...fields };
}

/** One line: characters a reader may act on inside strings (C1, U+2028, bidi) are `\uNNNN` escapes (safeJson). */
export const encodeLogLine = (line: LogLine): string => `${safeJson(line)}\n`;

/**
 * A campaign's log file in its findings directory. Lines wait in memory until the directory
 * exists (it is made at the first finding, like libFuzzer's crash files), then every line is
 * appended as it comes: a campaign killed mid-way keeps its log up to that point. A new campaign
 * starts a new file: the report describes the last campaign run in the directory.
 */
export class CampaignLog {
  private readonly lines: string[] = [];
  private readonly records: LogLine[] = [];
  private file: string | undefined;

  constructor(private readonly dir: string) {}

  write(line: LogLine): void {
    const text = encodeLogLine(line);
    this.lines.push(text);
    this.records.push(line);
    if (this.file) appendFileSync(this.file, text);
    else if (existsSync(this.dir)) this.open();
  }

  /** At the end: the file, opened now if the directory exists or `create` asks for it. */
  finish(create: boolean): string | undefined {
    if (!this.file && (create || existsSync(this.dir))) this.open();
    return this.file;
  }

  entries(): readonly LogLine[] {
    return this.records;
  }

  private open(): void {
    mkdirSync(this.dir, { recursive: true });
    this.file = join(this.dir, CAMPAIGN_LOG);
    // Written by rename: a campaign.jsonl already in the directory that is a symbolic link is
    // replaced, never written through (the findings directory is data; its links point anywhere).
    writeFileAtomic(this.file, this.lines.join(''));
  }
}

/** Reads a log written by any cocofuzz of this schema; a line of another schema is an error. */
export function readLog(file: string): LogLine[] {
  const lines: LogLine[] = [];
  const texts = readRegularFile(file).split('\n');
  texts.forEach((text, index) => {
    if (text.trim() === '') return;
    let line: unknown;
    try {
      line = JSON.parse(text);
    } catch {
      // The log is appended line by line: a campaign killed mid-write (or a full disk) leaves its
      // last line unterminated. That line is lost; the lines before it still make a report.
      if (index === texts.length - 1) return;
      throw new FormatError(`${file}:${index + 1}`, 'not a JSON line');
    }
    const record = line as Partial<LogLine> | null;
    if (typeof record !== 'object' || record === null || record.schema !== LOG_SCHEMA || typeof record.type !== 'string') {
      throw new FormatError(`${file}:${index + 1}`, `expected a "${LOG_SCHEMA}" line with a type`);
    }
    lines.push(record as LogLine);
  });
  return lines;
}
