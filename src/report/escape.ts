// Escaping user-controlled text (file names, config keys, policy and oracle names, messages from
// plugins, bytes of a malformed file) before it reaches a terminal or a report. A config key
// holding "\x1b]0;title\x07" must not retitle the user's window, and a binary file must not put
// NUL bytes on their screen (issue 14, item 2).

/**
 * C0 controls (tab included: one error is one line), DEL, and the C1 range that some terminals
 * read as CSI/OSC introducers, plus the Unicode line and paragraph separators and the bidi
 * overrides that can make a printed line read differently from what it contains.
 */
// eslint-disable-next-line no-control-regex
const TERMINAL_UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

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

/**
 * Text for an XML attribute or element (JUnit, HTML): the five markup characters as entities,
 * and every character XML 1.0 cannot carry at all (C0 controls but tab/newline/CR, lone
 * surrogates, U+FFFE/U+FFFF) as a visible `\xNN`, since no entity can express them.
 */
export function escapeXml(text: string): string {
  return text
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, escapeCode)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}
