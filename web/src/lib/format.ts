/** Dates in the photo's own time: taken_at is local wall time, shown as such (offset on demand). */
export function parseLocal(s: string | null | undefined): Date | null {
  if (!s) return null;
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?/.exec(s);
  if (!m) return null;
  return new Date(+m[1], +m[2] - 1, +m[3], +(m[4] ?? 0), +(m[5] ?? 0), +(m[6] ?? 0));
}

/**
 * Intl formatters are costly to build (toLocaleString with options builds one per call, ~0.3 ms),
 * and the timeline formats a label for every tile and header it renders while scrolling: one
 * formatter per locale and style, reused.
 */
const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(locale: string | undefined, style: string, options: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  const key = `${locale ?? ""}|${style}`;
  let f = formatters.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat(locale, options);
    formatters.set(key, f);
  }
  return f;
}

/** Month and day headers repeat every frame while scrolling: their text is kept once made. */
const labels = new Map<string, string>();
function remembered(key: string, make: () => string): string {
  let text = labels.get(key);
  if (text === undefined) {
    text = make();
    if (labels.size > 5000) labels.clear();
    labels.set(key, text);
  }
  return text;
}

export function monthLabel(key: string, locale?: string): string {
  const m = /^(\d{4})-(\d{2})$/.exec(key);
  if (!m) return key;
  return remembered(`m|${locale ?? ""}|${key}`, () =>
    formatter(locale, "month", { month: "long", year: "numeric" }).format(new Date(+m[1], +m[2] - 1, 1)));
}

export function dayLabel(key: string, locale?: string): string {
  const d = parseLocal(key);
  if (!d) return key;
  return remembered(`d|${locale ?? ""}|${key}`, () =>
    formatter(locale, "day", { weekday: "short", day: "numeric", month: "short", year: "numeric" }).format(d));
}

export function dateTime(s: string | null | undefined, locale?: string): string {
  const d = parseLocal(s);
  return d ? formatter(locale, "full", { dateStyle: "full", timeStyle: "short" }).format(d) : "";
}

/** "+02:00" from an offset in minutes (or a ready "+02:00" string). */
export function offsetLabel(off: unknown): string {
  if (off === null || off === undefined || off === "") return "";
  if (typeof off === "string") return off.startsWith("UTC") ? off : `UTC${off}`;
  const n = Number(off);
  if (!Number.isFinite(n)) return "";
  const sign = n < 0 ? "−" : "+";
  const a = Math.abs(n);
  return `UTC${sign}${String(Math.floor(a / 60)).padStart(2, "0")}:${String(a % 60).padStart(2, "0")}`;
}

export function exposure(p: { exposure_time?: number | null; f_number?: number | null; iso?: number | null; focal_length?: number | null }): string {
  const parts: string[] = [];
  if (p.f_number) parts.push(`ƒ/${p.f_number}`);
  if (p.exposure_time) parts.push(p.exposure_time >= 1 ? `${p.exposure_time} s` : `1/${Math.round(1 / p.exposure_time)} s`);
  if (p.focal_length) parts.push(`${Math.round(p.focal_length)} mm`);
  if (p.iso) parts.push(`ISO ${p.iso}`);
  return parts.join(" · ");
}

export function fileSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(0)} KB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GB`;
}
