// Escaping user-controlled text (file names, config keys, policy and oracle names, messages from
// plugins, bytes of a malformed file) before it reaches a terminal or a report. A config key
// holding "\x1b]0;title\x07" must not retitle the user's window, a binary file must not put NUL
// bytes on their screen (issue 14, item 2), and a plugin message with colour codes must not make
// a JUnit file invalid XML (issue 17). One module, so every writer applies the same rules.

/**
 * The Unicode line and paragraph separators and the bidi overrides: legal text for a terminal, XML
 * and JSON alike, but a displayed line breaks or reads differently from what it contains (Trojan
 * Source), and a Unicode line reader (Python's splitlines()) splits a JSON line there. A regex
 * character-class body, shared by every rule below.
 */
const SEPARATORS_AND_BIDI = '\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069';

/**
 * C0 controls (tab included: one error is one line), DEL, and the C1 range that some terminals
 * read as CSI/OSC introducers, plus SEPARATORS_AND_BIDI.
 */
const TERMINAL_UNSAFE = new RegExp(`[\\u0000-\\u001f\\u007f-\\u009f${SEPARATORS_AND_BIDI}]`, 'g');

// CSI, OSC and other escape sequences (ECMA-48): colour codes from a plugin's message.
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b(?:\[[0-?]*[ -/]*[@-~]|\][^\u0007\u001b]*(?:\u0007|\u001b\\)|[@-Z\\-_])/g;

// Outside XML 1.0 "Char" (#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]):
// C0 controls but tab/newline/CR, lone surrogates, U+FFFE/U+FFFF; plus DEL and C1, which XML
// allows but terminals showing a report interpret, and SEPARATORS_AND_BIDI, which XML allows but a
// CI page shows reordered or broken. No entity can express the first, so all become a visible
// escape; one such character would make the whole document unreadable to a parser.
const NOT_XML_CHAR = new RegExp(
  `[\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f\\ufffe\\uffff${SEPARATORS_AND_BIDI}]|[\\ud800-\\udbff](?![\\udc00-\\udfff])|(?<![\\ud800-\\udbff])[\\udc00-\\udfff]`,
  'g',
);

const escapeCode = (char: string): string => {
  const code = char.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
};

/** Text safe to print on a terminal: control characters become visible `\xNN` escapes. */
export function escapeTerminal(text: string): string {
  return text.replace(TERMINAL_UNSAFE, escapeCode);
}

/** Like escapeTerminal, but keeps newlines: for multi-line output (explain, traces). */
export function escapeTerminalLines(text: string): string {
  return text
    .split('\n')
    .map((line) => escapeTerminal(line))
    .join('\n');
}

/** Removes terminal escape sequences (colour codes) from a message. */
export const stripAnsi = (text: string): string => text.replace(ANSI, '');

/**
 * Text for any XML/HTML text node or quoted attribute (JUnit, HTML report): escape sequences
 * removed, the five markup characters and CR, LF and tab as references, and every character XML cannot carry
 * (or that reorders a displayed line) as a visible `\xNN`/`\uNNNN`.
 */
export function escapeXml(text: string): string {
  return stripAnsi(text)
    .replace(NOT_XML_CHAR, escapeCode)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;')
    // A parser normalises CR, LF and tab in an attribute value to spaces unless written as
    // references (XML 1.0 section 3.3.3); in a text node a reference is the same character.
    .replace(/[\r\n\t]/g, (char) => `&#${char.charCodeAt(0)};`);
}

/**
 * What JSON.stringify leaves raw that a reader may act on: C1 controls (8-bit CSI) and
 * SEPARATORS_AND_BIDI. Each can only sit inside a JSON string, where `\uNNNN` is the same character.
 */
const JSON_UNSAFE = new RegExp(`[\\u0080-\\u009f${SEPARATORS_AND_BIDI}]`, 'g');

/** JSON text (JSON.stringify's) with JSON_UNSAFE characters as `\uNNNN` escapes: the same value, safe to print and to split into lines. */
export const escapeJsonText = (json: string): string => json.replace(JSON_UNSAFE, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** `JSON.stringify(value)`, escaped as escapeJsonText does. */
export const safeJson = (value: unknown): string => escapeJsonText(JSON.stringify(value));

/**
 * Plain text for JSON-based reports (SARIF): escape sequences removed, and the characters a
 * viewer acts on (C1 controls, line separators, bidi overrides) as visible escapes; JSON.stringify
 * escapes the rest.
 */
export const plainText = (text: string): string => stripAnsi(text).replace(JSON_UNSAFE, escapeCode);

/**
 * `text` as one word a POSIX shell reads back unchanged: as it is when it holds only characters no
 * shell treats specially, else single-quoted. For paths in the commands we tell users to paste.
 */
export function shellWord(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}
