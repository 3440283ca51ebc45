/**
 * The search box's view of the filter language (README "Search"): the server parses queries;
 * the app only needs to cut a query into tokens so filters can show as chips and the word being
 * typed can be completed. Cutting follows the server's rules for quotes and `-` negation, so a
 * query survives a round trip chips → text unchanged.
 */

export interface Token {
  /** The text of the token as typed, quotes included. */
  raw: string;
  /** A `key:value` filter (possibly negated) or a free-text word/phrase. */
  kind: "filter" | "text";
  key?: string;
  value?: string;
  negated?: boolean;
  start: number;
  end: number;
}

const FILTER_RE = /^(-?)([a-zA-Z_]+):(.*)$/s;

function unquote(v: string): string {
  return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
}

/** Splits a query into tokens at spaces outside double quotes. */
export function tokenize(query: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = query.length;
  while (i < n) {
    while (i < n && /\s/.test(query[i])) i++;
    if (i >= n) break;
    const start = i;
    let inQuote = false;
    while (i < n && (inQuote || !/\s/.test(query[i]))) {
      if (query[i] === '"') inQuote = !inQuote;
      i++;
    }
    const raw = query.slice(start, i);
    const m = FILTER_RE.exec(raw);
    if (m && !raw.startsWith('"')) {
      tokens.push({ raw, kind: "filter", negated: m[1] === "-", key: m[2].toLowerCase(), value: unquote(m[3]), start, end: i });
    } else {
      tokens.push({ raw, kind: "text", negated: raw.startsWith("-") && raw.length > 1, start, end: i });
    }
  }
  return tokens;
}

/** The chips (complete filters) and the free text left for the input box. */
export function splitChips(query: string): { chips: Token[]; text: string } {
  const tokens = tokenize(query);
  const chips = tokens.filter((t) => t.kind === "filter" && t.value !== "");
  const text = tokens.filter((t) => !chips.includes(t)).map((t) => t.raw).join(" ");
  return { chips, text };
}

/** Joins chips and free text back into one query string. */
export function joinQuery(chips: Token[], text: string): string {
  return [...chips.map((c) => c.raw), text.trim()].filter(Boolean).join(" ");
}

/** A filter token from a key and a value, quoting values with spaces. */
export function filterToken(key: string, value: string, negated = false): string {
  const v = /[\s"]/.test(value) ? `"${value.replace(/"/g, "")}"` : value;
  return `${negated ? "-" : ""}${key}:${v}`;
}

/** The token the caret is in (for autocomplete): its text and where it starts and ends. */
export function tokenAt(query: string, caret: number): { text: string; start: number; end: number } {
  let start = caret;
  let inQuote = (query.slice(0, caret).match(/"/g) ?? []).length % 2 === 1;
  while (start > 0 && (inQuote || !/\s/.test(query[start - 1]))) {
    start--;
    if (query[start] === '"') inQuote = !inQuote;
  }
  let end = caret;
  while (end < query.length && !/\s/.test(query[end])) end++;
  return { text: query.slice(start, caret), start, end };
}

/** Replaces the token at the caret with a completion; returns the new text and caret. */
export function applyCompletion(query: string, caret: number, insert: string): { text: string; caret: number } {
  const { start, end } = tokenAt(query, caret);
  const negate = query[start] === "-" && !insert.startsWith("-") ? "-" : "";
  const before = query.slice(0, start);
  const after = query.slice(end).replace(/^\s*/, "");
  const piece = negate + insert + (insert.endsWith(":") ? "" : " ");
  return { text: before + piece + after, caret: (before + piece).length };
}
