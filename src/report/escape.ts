// Escaping for what cocofuzz writes into structured files: messages, policy names and seeds come
// from user plugins and flags, and a message may carry terminal colour codes. One place, so every
// writer (JUnit, SARIF, HTML) applies the same rules.

// CSI and other escape sequences (ECMA-48): colour codes from a plugin's message.
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b(?:\[[0-?]*[ -/]*[@-~]|\][^\u0007\u001b]*(?:\u0007|\u001b\\)|[@-Z\\-_])/g;

// XML 1.0 "Char": #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]. A lone
// surrogate or a control character makes the whole document unreadable to a JUnit parser.
// eslint-disable-next-line no-control-regex
const NOT_XML_CHAR = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** Removes terminal escape sequences. */
export const stripAnsi = (text: string): string => text.replace(ANSI, '');

/** Text safe in any XML/HTML text node or quoted attribute: escapes removed, markup escaped, invalid characters shown as \xNN. */
export function markupText(text: string): string {
  return stripAnsi(text)
    .replace(NOT_XML_CHAR, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** Plain text for JSON-based reports (SARIF): JSON.stringify escapes, only the escapes go. */
export const plainText = (text: string): string => stripAnsi(text);
