import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Bucket } from '../../src/engine/campaign.ts';
import { encodeRepro, parseRepro } from '../../src/repro/format.ts';
import { defaultConfig } from '../../src/ops/config.ts';
import { reproJsonSchema } from '../../src/repro/json-schema.ts';
import { spawnSync } from 'node:child_process';
import { escapeXml, plainText, safeJson, shellWord, stripAnsi } from '../../src/report/escape.ts';
import { renderHtmlReport } from '../../src/report/html.ts';
import { encodeLogLine, logLine, readLog } from '../../src/report/jsonl.ts';
import { renderJunit } from '../../src/report/junit.ts';
import { renderSarif } from '../../src/report/sarif.ts';
import { CHROMIUM, renderFile } from '../helpers/chromium.ts';
import { reproSchemaErrors, sarifErrors } from '../helpers/schemas.ts';

// A message as a careless plugin might write it: colour codes, a NUL, a lone surrogate, markup.
const NASTY = '\u001b[31mFAIL\u001b[0m <dev "0"> & \u0000 \ud800 \u001b]8;;http://x\u0007link\u001b]8;;\u0007';

function bucket(message: string, file?: string): Bucket {
  return {
    signature: `policy-error|${message}|`,
    oracle: 'policy-error',
    hits: 3,
    firstCase: 7,
    violation: { oracle: 'policy-error', severity: 'correctness', step: 1, message },
    repro: { title: 't', config: {} as Bucket['repro']['config'], seed: 's/7', ops: [] },
    shrunkFrom: 12,
    ...(file ? { file } : {}),
  };
}

const summary = { cases: 10, seed: 'seed <1>', hostPolicy: 'my "host"', guestPolicy: 'linux', startedAt: Date.UTC(2026, 10, 26, 2, 0, 0), elapsedMs: 1500 };

describe('escaping (report/escape.ts)', () => {
  it('quotes a path for the shell only where it must, so a printed command pastes back as it was', () => {
    expect(shellWord('corpus/policies/p.ts')).toBe('corpus/policies/p.ts');
    expect(shellWord('/tmp/my "host"/<b>p.ts')).toBe(`'/tmp/my "host"/<b>p.ts'`);
    expect(shellWord("it's.ts")).toBe(`'it'\\''s.ts'`);
    // What bash reads back from the quoted word is the path itself.
    const path = `/tmp/a b/it's "x" $HOME;.ts`;
    const echoed = spawnSync('bash', ['-c', `printf %s ${shellWord(path)}`], { encoding: 'utf8' }).stdout;
    expect(echoed).toBe(path);
  });

  it('removes terminal escapes and shows characters XML cannot hold', () => {
    expect(stripAnsi('\u001b[1;31mred\u001b[0m')).toBe('red');
    expect(escapeXml(NASTY)).toBe('FAIL &lt;dev &quot;0&quot;&gt; &amp; \\x00 \\ud800 link');
  });

  it('shows bidi overrides, line separators and 8-bit CSI where a viewer would act on them: XML, SARIF text, JSON lines', () => {
    const tricky = 'a\u202eb\u2028c\u009b2Jd\re';
    // XML: legal characters, but a CI page would reorder or break the line; CR survives an attribute.
    expect(escapeXml(tricky)).toBe('a\\u202eb\\u2028c\\x9b2Jd&#13;e');
    expect(plainText(tricky)).toBe('a\\u202eb\\u2028c\\x9b2Jd\re');
    // JSON lines: the same value, escaped, so a Unicode line reader (splitlines) keeps one record.
    const line = safeJson({ message: tricky });
    expect(JSON.parse(line)).toEqual({ message: tricky });
    expect(line).toBe('{"message":"a\\u202eb\\u2028c\\u009b2Jd\\re"}');
    expect(encodeLogLine(logLine('result', { file: tricky })).split(/[\n\r\u2028\u2029\u0085]/)).toHaveLength(2);
    // A repro file, printed when it could not be saved, or read with cat.
    const repro = encodeRepro({ title: tricky, config: defaultConfig(), seed: tricky, ops: [] });
    expect(repro).not.toMatch(/[\u0080-\u009f\u2028\u202e]/);
    expect(parseRepro(JSON.parse(repro)).seed).toBe(tricky);
    // In an attribute a parser turns raw LF and tab into spaces: references keep them.
    expect(escapeXml('a\nb\tc')).toBe('a&#10;b&#9;c');
  });
});

describe('JUnit', () => {
  it('carries time and timestamp and escapes user text', () => {
    const xml = renderJunit([bucket(NASTY, 'out/policy-error-1.json')], summary);
    expect(xml).toContain('time="1.500" timestamp="2026-11-26T02:00:00"');
    // eslint-disable-next-line no-control-regex
    expect(xml).not.toMatch(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/);
    expect(xml).toContain('name="cocofuzz my &quot;host&quot; + linux (seed seed &lt;1&gt;)"');
  });

  it('names where a bucket was first found: the global case and its seed, or the corpus file replayed', () => {
    expect(renderJunit([bucket('m')], summary)).toContain('first in case 7 (seed s/7)');
    const replayed = { ...bucket('m'), firstCase: 0, replayOf: 'nightly/ab12.json' };
    expect(renderJunit([replayed], summary)).toContain('first in corpus file nightly/ab12.json');
    expect(renderJunit([replayed], summary)).not.toContain('case 0');
    expect(renderSarif([replayed], [], { ...summary, version: '0.1.0', baseDir: process.cwd() })).toContain('first in corpus file nightly/ab12.json');
  });

  it.skipIf(!CHROMIUM)('is well-formed XML to a browser parser', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cocofuzz-junit-'));
    const file = join(dir, 'junit.xml');
    writeFileSync(file, renderJunit([bucket(NASTY)], summary));
    const { dom } = renderFile(file);
    expect(dom).toContain('testsuite');
    expect(dom).not.toContain('parsererror');
  });
});

describe('campaign.jsonl', () => {
  it('reads a log whose last line a killed campaign left unterminated; a bad line before it is still an error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cocofuzz-log-'));
    const file = join(dir, 'campaign.jsonl');
    const start = encodeLogLine(logLine('start', { seed: 's' }));
    writeFileSync(file, `${start}{"schema":"cocofuzz-log/1","type":"prog`);
    expect(readLog(file).map((l) => l.type)).toEqual(['start']);
    writeFileSync(file, `{"schema":"cocofuz\n${start}`);
    expect(() => readLog(file)).toThrow(/campaign\.jsonl:1: not a JSON line/);
  });
});

describe('HTML report', () => {
  it("labels coverage by what the campaign counted: features when guided, behaviours otherwise", () => {
    const log = (coverage: boolean) => [
      logLine('start', { seed: 's', coverage }),
      logLine('summary', { seed: 's', cases: 3, coverage: 42, timeline: [{ cases: 3, elapsedMs: 10, coverage: 42, buckets: 0, findings: 0 }] }),
    ];
    const html = (coverage: boolean) => renderHtmlReport({ title: 't', log: log(coverage), findings: [], generatedAt: new Date(0) });
    expect(html(true)).toContain('coverage (features)');
    expect(html(true)).toContain('42 features after 3 cases');
    expect(html(false)).toContain('coverage (behaviours)');
    expect(html(false)).toContain('42 behaviours after 3 cases');
  });
});

describe('SARIF', () => {
  it('validates against the SARIF 2.1.0 schema, one result per bucket with the repro as location', () => {
    const cwd = process.cwd();
    const text = renderSarif([bucket(NASTY, join(cwd, 'cocofuzz-out', 'policy-error-1.json')), { ...bucket('second'), oracle: 'io-s2-rmp-size', signature: 'b2' }], [
      { name: 'io-s2-rmp-size', description: 'IO S2 leaf size equals RMP size', severity: 'security' },
    ], { ...summary, version: '0.1.0', baseDir: cwd });
    const document = JSON.parse(text) as { runs: { results: { ruleId: string; locations?: { physicalLocation: { artifactLocation: { uri: string } } }[]; message: { text: string } }[]; tool: { driver: { rules: { id: string }[] } } }[] };
    expect(sarifErrors(document)).toEqual([]);
    const [run] = document.runs;
    expect(run?.results.map((r) => r.ruleId)).toEqual(['policy-error', 'io-s2-rmp-size']);
    expect(run?.tool.driver.rules.map((r) => r.id)).toEqual(['io-s2-rmp-size', 'policy-error']);
    expect(run?.results[0]?.locations?.[0]?.physicalLocation.artifactLocation.uri).toBe('cocofuzz-out/policy-error-1.json');
    expect(run?.results[0]?.message.text).not.toContain('\u001b');
  });

  it('a campaign without findings is a valid log with no results', () => {
    const document = JSON.parse(renderSarif([], [], { ...summary, version: '0.1.0', baseDir: process.cwd() })) as { runs: { results: unknown[] }[] };
    expect(sarifErrors(document)).toEqual([]);
    expect(document.runs[0]?.results).toEqual([]);
  });

  it('an oracle that threw makes the run unsuccessful, with a notification: still a valid log', () => {
    const error = { oracle: 'thrower', step: 3, message: NASTY, case: 12, repro: bucket('x').repro, file: join(process.cwd(), 'out', 'oracle-error-thrower.json') };
    const document = JSON.parse(renderSarif([], [], { ...summary, version: '0.1.0', baseDir: process.cwd() }, [error])) as {
      runs: { invocations: { executionSuccessful: boolean; toolExecutionNotifications: { message: { text: string } }[] }[] }[];
    };
    expect(sarifErrors(document)).toEqual([]);
    const [invocation] = document.runs[0]!.invocations;
    expect(invocation?.executionSuccessful).toBe(false);
    expect(invocation?.toolExecutionNotifications[0]?.message.text).toMatch(/^oracle thrower threw at step 3 of case 12: FAIL <dev "0">/);
  });

  it('the validator rejects a broken log (it is not vacuous)', () => {
    expect(sarifErrors({ version: '2.1.0', runs: [{ tool: {} }] }).length).toBeGreaterThan(0);
  });
});

describe('repro JSON Schema (schema/repro.schema.json)', () => {
  it('is the one the parser tables give (npm run schema)', () => {
    const shipped = JSON.parse(readFileSync(new URL('../../schema/repro.schema.json', import.meta.url), 'utf8')) as unknown;
    expect(shipped).toEqual(reproJsonSchema());
  });

  it('accepts every corpus file and rejects an unknown op field', () => {
    const corpus = fileURLToPath(new URL('../../corpus/', import.meta.url));
    const files = readdirSync(corpus).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThan(10);
    for (const file of files) expect([file, reproSchemaErrors(JSON.parse(readFileSync(join(corpus, file), 'utf8')))]).toEqual([file, []]);
    const bad = { format: 'cocofuzz-repro/1', config: { arch: 'snp' }, ops: [{ op: 'accept', gpa: '0x200000', size: '2M', color: 'red' }] };
    expect(reproSchemaErrors(bad).length).toBeGreaterThan(0);
  });

  it('knows the fields issues 11 and 13 added: during, map_single.overMax, devices[].dmaMask', () => {
    const repro = {
      format: 'cocofuzz-repro/1',
      config: { arch: 'snp', devices: [{ id: 0, trusted: true, iommu: 's2', dmaMask: 32 }] },
      ops: [
        { op: 'map_single', dev: 0, bytes: '4K', dir: 'to_device', overMax: true },
        { op: 'share', gpa: '0x200000', pages: 1, during: [{ after: 1, op: { op: 'dma', dev: 0, iova: '0x200000', len: 64, write: true } }, { after: 0, op: { op: 'touch', gpa: '0x200000', write: false } }] },
      ],
    };
    // The parser agrees: the schema describes what cocofuzz accepts.
    expect(() => parseRepro(repro)).not.toThrow();
    expect(reproSchemaErrors(repro)).toEqual([]);
    const variants = [
      { ...repro, config: { arch: 'snp', devices: [{ id: 0, trusted: true, iommu: 's2', dmaMask: 16 }] } },
      { ...repro, ops: [{ op: 'share', gpa: '0x200000', pages: 1, during: [{ after: 0, op: { op: 'share', gpa: '0x200000', pages: 1 } }] }] },
      { ...repro, ops: [{ op: 'share', gpa: '0x200000', pages: 1, during: [{ after: -1, op: { op: 'touch', gpa: '0x200000', write: false } }] }] },
      { ...repro, ops: [{ op: 'share', gpa: '0x200000', pages: 1, during: [{ after: 0, op: { op: 'touch', gpa: '0x200000', write: false, during: [] } }] }] },
    ];
    for (const bad of variants) {
      expect(() => parseRepro(bad)).toThrow();
      expect(reproSchemaErrors(bad).length).toBeGreaterThan(0);
    }
  });
});
