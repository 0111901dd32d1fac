// The HTML report (`fuzz --html FILE`, `cocofuzz report DIR`): one self-contained file, no scripts
// and no external resources, so it opens from a CI artifact as it is. The campaign summary,
// coverage and findings over time as inline SVG plots, and each bucket with what `explain` prints
// and its failing 2M region drawn as a map of every table before and after the step.

import { SZ_4K, hex } from '../api.ts';
import { escapeXml as x } from './escape.ts';
import type { LogLine } from './jsonl.ts';
import { oracleErrorText } from './origin.ts';
import type { MapRow, RegionMap } from './region-map.ts';

export interface ReportFinding {
  oracle: string;
  severity: string;
  message: string;
  signature?: string;
  hits?: number;
  file?: string;
  seed: string;
  /** Where the campaign first found it (bucketOrigin()). */
  origin?: string;
  ops: number;
  explain: string;
  before?: RegionMap;
  after?: RegionMap;
  /** The guest address the violation names, marked on the map. */
  gpa?: number;
}

export interface ReportInput {
  title: string;
  /** The campaign log's lines (start, progress, finding, summary), if there is a log. */
  log: readonly LogLine[];
  findings: readonly ReportFinding[];
  generatedAt: Date;
}

interface Point {
  x: number;
  y: number;
  note: string;
}

const COLOURS: Record<string, string> = {
  '2M': '#2f6fd0',
  '4K': '#f08c2e',
  '2M-hv': '#a9bfe6',
  '4K-hv': '#f6cfa5',
  unmapped: '#e4e4e4',
  empty: '#e4e4e4',
  none: '#e4e4e4',
  unaccepted: '#e4e4e4',
  accepted: '#cfdc9f',
  validated: '#4f9d63',
  shared: '#a774c2',
};

const LEGEND: [string, string][] = [
  ['2M', '2M leaf / entry (assigned)'],
  ['4K', '4K leaf / entry (assigned)'],
  ['2M-hv', '2M RMP, hypervisor-owned'],
  ['4K-hv', '4K RMP, hypervisor-owned'],
  ['validated', 'guest: private, validated'],
  ['accepted', 'guest: accepted, not validated'],
  ['shared', 'guest: shared'],
  ['unmapped', 'unmapped / not cached / not accepted'],
];

const num = (n: number): string => (Math.round(n * 10) / 10).toString();

/** A step plot of y over x: the axes labelled, each point with its note on hover. */
function plot(title: string, xLabel: string, yLabel: string, points: readonly Point[]): string {
  const width = 520;
  const height = 200;
  const left = 52;
  const bottom = 34;
  const top = 24;
  const right = 12;
  const maxX = Math.max(1, ...points.map((p) => p.x));
  const maxY = Math.max(1, ...points.map((p) => p.y));
  const sx = (v: number): number => left + (v / maxX) * (width - left - right);
  const sy = (v: number): number => height - bottom - (v / maxY) * (height - bottom - top);
  let path = '';
  points.forEach((p, i) => {
    path += i === 0 ? `M${num(sx(p.x))},${num(sy(p.y))}` : `H${num(sx(p.x))}V${num(sy(p.y))}`;
  });
  const dots = points.map((p) => `<circle cx="${num(sx(p.x))}" cy="${num(sy(p.y))}" r="2.5"><title>${x(p.note)}</title></circle>`).join('');
  return `<svg class="plot" role="img" aria-label="${x(title)}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" xmlns="http://www.w3.org/2000/svg">
<text x="${left}" y="14" class="plot-title">${x(title)}</text>
<line x1="${left}" y1="${height - bottom}" x2="${width - right}" y2="${height - bottom}" class="axis"/>
<line x1="${left}" y1="${top}" x2="${left}" y2="${height - bottom}" class="axis"/>
<text x="${left - 6}" y="${num(sy(maxY) + 4)}" text-anchor="end">${maxY}</text>
<text x="${left - 6}" y="${height - bottom + 4}" text-anchor="end">0</text>
<text x="${width - right}" y="${height - bottom + 16}" text-anchor="end">${num(maxX)}</text>
<text x="${left}" y="${height - bottom + 16}">0</text>
<text x="${(left + width) / 2}" y="${height - 4}" text-anchor="middle">${x(xLabel)}</text>
<text x="12" y="${(top + height - bottom) / 2}" transform="rotate(-90 12 ${(top + height - bottom) / 2})" text-anchor="middle">${x(yLabel)}</text>
${points.length > 0 ? `<path d="${path}" class="line"/>${dots}` : `<text x="${(left + width) / 2}" y="${height / 2}" text-anchor="middle">no data</text>`}
</svg>`;
}

const FRAME_PX = 1.5;
const LABEL_PX = 104;
const ROW_PX = 18;

function mapRows(rows: readonly MapRow[], top: number, changed: ReadonlySet<string>): string {
  return rows
    .map((row, r) => {
      const y = top + r * ROW_PX;
      const rects = row.runs
        .map(
          (run) =>
            `<rect x="${num(LABEL_PX + run.from * FRAME_PX)}" y="${y}" width="${num((run.to - run.from) * FRAME_PX)}" height="${ROW_PX - 4}" fill="${COLOURS[run.kind] ?? '#999'}" data-kind="${x(run.kind)}"><title>${x(`${row.table}: ${run.label} (frames ${run.from}..${run.to - 1})`)}</title></rect>`,
        )
        .join('');
      return `<text x="${LABEL_PX - 6}" y="${y + ROW_PX - 7}" text-anchor="end"${changed.has(row.table) ? ' class="changed"' : ''}>${x(row.table)}</text>${rects}`;
    })
    .join('\n');
}

const rowKey = (row: MapRow): string => JSON.stringify(row.runs);

/** The region before and after the failing step, one row per table, a red line at the violation's address. */
export function renderRegionMap(before: RegionMap | undefined, after: RegionMap, gpa: number | undefined): string {
  const width = LABEL_PX + 512 * FRAME_PX + 10;
  const blockPx = after.rows.length * ROW_PX + 22;
  const height = (before ? 2 : 1) * blockPx + 18;
  const earlier = new Map((before?.rows ?? []).map((row) => [row.table, rowKey(row)]));
  const changed = new Set(after.rows.filter((row) => earlier.get(row.table) !== rowKey(row)).map((row) => row.table));
  const mark = gpa === undefined ? '' : (() => {
    const px = num(LABEL_PX + ((gpa - after.gpa) / SZ_4K) * FRAME_PX);
    return `<line x1="${px}" y1="16" x2="${px}" y2="${height - 2}" class="mark"><title>${x(`violation at ${hex(gpa)}`)}</title></line>`;
  })();
  const blocks: string[] = [];
  let top = 0;
  for (const [label, map] of before ? ([['before the step', before], ['after the step', after]] as const) : ([['after the step', after]] as const)) {
    blocks.push(`<text x="0" y="${top + 13}" class="block-title">${label}</text>`, mapRows(map.rows, top + 18, label.startsWith('after') ? changed : new Set()));
    top += blockPx;
  }
  const axis = `<text x="${LABEL_PX}" y="${height - 2}">${hex(after.gpa)}</text><text x="${LABEL_PX + 512 * FRAME_PX}" y="${height - 2}" text-anchor="end">+2M</text>`;
  return `<svg class="region-map" data-region="${hex(after.gpa)}" role="img" aria-label="${x(`2M region ${hex(after.gpa)} before and after the failing step`)}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" xmlns="http://www.w3.org/2000/svg">
${blocks.join('\n')}
${axis}
${mark}
</svg>`;
}

const legend = (): string =>
  `<ul class="legend">${LEGEND.map(([kind, text]) => `<li><span style="background:${COLOURS[kind]}"></span>${x(text)}</li>`).join('')}</ul>`;

/**
 * What the log's `coverage` figures count: features in a coverage-guided campaign (its start line
 * says so; a log from before that field has `corpus` in its summary), behaviours otherwise.
 */
function coverageUnit(log: readonly LogLine[]): string {
  const start = log.find((l) => l.type === 'start');
  const summary = log.findLast((l) => l.type === 'summary');
  return start?.coverage === true || (summary !== undefined && 'corpus' in summary) ? 'features' : 'behaviours';
}

function summaryTable(log: readonly LogLine[]): string {
  const start = log.find((l) => l.type === 'start');
  const summary = log.findLast((l) => l.type === 'summary');
  if (!start && !summary) return '<p>No campaign log (campaign.jsonl) in this directory: only the repro files are shown.</p>';
  const fields: [string, unknown][] = [
    ['seed', start?.seed ?? summary?.seed],
    ['host policy', start?.hostPolicy],
    ['guest policy', start?.guestPolicy],
    ['shard', start?.shard],
    ['workers', start?.workers],
    ['started', start?.startedAt],
    ['cases', summary?.cases],
    ['ops', summary?.ops],
    ['buckets', summary?.buckets],
    ['findings (failing cases)', summary?.findings],
    ['hits', summary?.hits],
    ['oracle errors', summary?.oracleErrors],
    [`coverage (${coverageUnit(log)})`, summary?.coverage],
    ['elapsed', typeof summary?.elapsedMs === 'number' ? `${(summary.elapsedMs / 1000).toFixed(1)} s` : undefined],
    ['stopped by', summary?.stoppedBy],
    ['exit code', summary?.exit],
    ['cocofuzz', start?.version],
  ];
  const rows = fields.filter(([, v]) => v !== undefined).map(([k, v]) => `<tr><th>${x(k)}</th><td>${x(String(v))}</td></tr>`);
  return `<table class="summary">${rows.join('')}</table>`;
}

/**
 * The oracles that threw (the log's `oracle-error` lines): each checked nothing after that step of
 * that case, so a campaign with one is not clean (exit 2) whatever its findings say.
 */
function oracleErrorSection(errors: readonly LogLine[]): string {
  if (errors.length === 0) return '';
  // The log's fields as written by fuzz (strings and numbers); anything else as JSON.
  const text = (value: unknown): string => (typeof value === 'string' || typeof value === 'number' ? String(value) : (JSON.stringify(value) ?? ''));
  const items = errors.map((e) => {
    const origin = { ...(e.corpusFile !== undefined ? { replayOf: text(e.corpusFile) } : {}), ...(typeof e.case === 'number' ? { case: e.case } : {}) };
    const line = oracleErrorText({ ...origin, oracle: text(e.oracle), step: text(e.step), message: text(e.message) });
    return `<li><span class="message">${x(line)}</span>${e.file !== undefined ? ` <span class="facts">repro ${x(text(e.file))}</span>` : ''}</li>`;
  });
  return `<h2>Oracle errors</h2>\n<p>These oracles threw and checked nothing after that step (reported once per oracle): the campaign is not clean, whatever the findings below say.</p>\n<ul>${items.join('')}</ul>`;
}

function timeline(log: readonly LogLine[]): { elapsedMs: number; cases: number; coverage: number; buckets: number; findings: number }[] {
  const summary = log.findLast((l) => l.type === 'summary');
  if (Array.isArray(summary?.timeline)) return summary.timeline as ReturnType<typeof timeline>;
  return log.filter((l) => l.type === 'progress') as unknown as ReturnType<typeof timeline>;
}

function findingSection(finding: ReportFinding, index: number): string {
  const facts = [
    `severity ${finding.severity}`,
    finding.hits === undefined ? undefined : `${finding.hits} hit(s)`,
    finding.origin === undefined ? undefined : `first in ${finding.origin}`,
    `seed ${finding.seed}`,
    `${finding.ops} ops`,
    finding.file ? `repro ${finding.file}` : undefined,
  ].filter((f) => f !== undefined);
  const map = finding.after
    ? `<h4>2M region ${hex(finding.after.gpa)}: every table before and after the failing step</h4>${renderRegionMap(finding.before, finding.after, finding.gpa)}`
    : '<p>No 2M region to draw: the violation names no address.</p>';
  return `<section class="finding" id="finding-${index}">
<h3>${x(finding.oracle)}</h3>
<p class="message">${x(finding.message)}</p>
<p class="facts">${x(facts.join(' · '))}${finding.signature ? `<br><code>${x(finding.signature)}</code>` : ''}</p>
${map}
<details open><summary>cocofuzz explain</summary><pre>${x(finding.explain)}</pre></details>
</section>`;
}

export function renderHtmlReport(input: ReportInput): string {
  const points = timeline(input.log);
  const unit = coverageUnit(input.log);
  const oracleErrors = input.log.filter((l) => l.type === 'oracle-error');
  const coverage = points.map((p) => ({ x: p.elapsedMs / 1000, y: p.coverage, note: `${p.coverage} ${unit} after ${p.cases} cases, ${(p.elapsedMs / 1000).toFixed(1)} s` }));
  const buckets = points.map((p) => ({ x: p.elapsedMs / 1000, y: p.buckets, note: `${p.buckets} bucket(s), ${p.findings} failing case(s) after ${p.cases} cases` }));
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>${x(input.title)}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1000px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h3 { margin-bottom: .2em; } h4 { font-size: 1em; margin: .8em 0 .3em; }
table.summary th { text-align: left; padding-right: 1.5em; font-weight: 600; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
svg .plot-title, svg .block-title { font-weight: 600; }
svg .axis { stroke: #888; } svg .line { fill: none; stroke: #2f6fd0; stroke-width: 2; } svg circle { fill: #2f6fd0; }
svg .mark { stroke: #d62728; stroke-width: 1.5; stroke-dasharray: 4 2; } svg text.changed { fill: #d62728; font-weight: 600; }
svg rect { stroke: #fff; stroke-width: .3; }
section.finding { border-top: 1px solid #ccc; padding-top: .5em; margin-top: 1.5em; }
.message { font-family: ui-monospace, monospace; background: #fff4f4; padding: .4em; }
.facts { color: #555; }
pre { background: #f6f6f6; padding: .6em; white-space: pre-wrap; font-size: 12px; }
ul.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .3em 1.2em; font-size: 12px; }
ul.legend span { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -2px; }
</style>
</head>
<body>
<h1>${x(input.title)}</h1>
<p>Generated ${x(input.generatedAt.toISOString())}. ${input.findings.length} repro file(s).</p>
<h2>Campaign</h2>
${summaryTable(input.log)}
${points.length === 0 ? '' : `<div class="plots">\n${plot('Coverage over time', 'seconds', unit, coverage)}\n${plot('Findings over time', 'seconds', 'buckets', buckets)}\n</div>`}
${oracleErrorSection(oracleErrors)}
<h2>Findings</h2>
${input.findings.length === 0 ? `<p>No findings${oracleErrors.length > 0 ? ', but an oracle threw (above): the cases were not all checked' : ''}.</p>` : `${legend()}<p>Table rows named in red changed in the failing step; the dashed red line is the address the violation names.</p>`}
${input.findings.map(findingSection).join('\n')}
</body>
</html>
`;
}
