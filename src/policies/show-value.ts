// How a value a hook returned is named in a policy error: exactly what came back (NaN stays NaN,
// a function is called one), short enough for a one-line message.

const MAX = 80;

export function showValue(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean' || value === undefined) return String(value);
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  let text: string;
  try {
    text = JSON.stringify(value) ?? Object.prototype.toString.call(value);
  } catch {
    text = Object.prototype.toString.call(value);
  }
  return text.length > MAX ? `${text.slice(0, MAX - 3)}...` : text;
}
