/**
 * Pure helpers of the photo editor (EditPanel.vue): UTC offsets typed by people, dates for
 * <input type="datetime-local">, keywords typed as one line, and the API's errors per field.
 * Kept free of Vue so they are unit-tested (tests/edit.test.ts).
 */

/** The widest offsets in use: UTC−12:00 to UTC+14:00 (the API accepts ±14:00, in minutes). */
export const MAX_OFFSET = 14 * 60;

/**
 * Minutes east of UTC from what a person types: "+02:00", "-5", "+0530", "5:45", "UTC+1", "GMT-03:30",
 * "Z" or "UTC" (0). Empty means "unknown" (null). Anything else, or beyond ±14:00, is undefined
 * (the field shows an error and nothing is saved).
 */
export function parseOffset(text: string): number | null | undefined {
  let s = text.trim().replace(/\u2212/g, "-").toUpperCase();
  if (s === "") return null;
  s = s.replace(/^(UTC|GMT)\s*/, "");
  if (s === "" || s === "Z") return 0;
  const m = /^([+-])?\s*(\d{1,2})(?::?(\d{2}))?$/.exec(s);
  if (!m) return undefined;
  const hours = Number(m[2]);
  const minutes = m[3] === undefined ? 0 : Number(m[3]);
  if (minutes >= 60) return undefined;
  const total = (m[1] === "-" ? -1 : 1) * (hours * 60 + minutes);
  return Math.abs(total) > MAX_OFFSET ? undefined : total + 0; // + 0: never -0
}

/** "+02:00" / "-03:30" for an input field (ASCII minus, so it parses back); "" when unknown. */
export function formatOffset(minutes: number | null | undefined): string {
  if (minutes === null || minutes === undefined || !Number.isFinite(minutes)) return "";
  const sign = minutes < 0 ? "-" : "+";
  const a = Math.abs(minutes);
  return `${sign}${String(Math.floor(a / 60)).padStart(2, "0")}:${String(a % 60).padStart(2, "0")}`;
}

/** The API's taken_at ("2008-10-22T16:29:49") as a datetime-local value, seconds kept. */
export function toInputDate(takenAt: string | null | undefined): string {
  const m = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?/.exec(takenAt ?? "");
  return m ? `${m[1]}T${m[2]}${m[3] ?? ":00"}` : "";
}

/** A datetime-local value back to the API's form (always with seconds); null when empty or malformed. */
export function fromInputDate(value: string): string | null {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2})?(\.\d+)?$/.exec(value.trim());
  return m ? `${m[1]}T${m[2]}${m[3] ?? ":00"}` : null;
}

/** Keywords typed on one line, comma-separated: trimmed, empty ones dropped, duplicates (any case) once. */
export function parseKeywords(text: string): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const raw of text.split(",")) {
    const w = raw.trim();
    if (w && !seen.has(w.toLowerCase())) {
      seen.add(w.toLowerCase());
      out.push(w);
    }
  }
  return out;
}

/** Where a field's value came from, by the photo's `sources`; the keys the API uses per field. */
export const SOURCE_KEYS: Record<string, string> = {
  title: "title",
  description: "description",
  date: "taken_at",
  location: "lat",
  keywords: "keywords",
  rating: "rating",
  favorite: "favorite",
  private: "private",
  archived: "archived",
};

export function sourceOf(sources: Record<string, string> | null | undefined, field: string): string | null {
  const key = SOURCE_KEYS[field] ?? field;
  return sources?.[key] ?? null;
}

/** The editor's field a body field belongs to (taken_offset is part of the date, lng of the location). */
const FIELD_OF: Record<string, string> = { taken_at: "date", taken_offset: "date", lat: "location", lng: "location" };

/**
 * The API's error as messages per editor field: a 422 names `body.<field>` in its details, a 400
 * names `details.field`; what names no field goes under `fallback` (the field being saved).
 */
export function fieldErrors(
  err: { message: string; details?: unknown },
  fallback: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  const details = err.details as any;
  const problems: any[] = Array.isArray(details) ? details : details && typeof details === "object" && details.field ? [{ field: details.field, message: err.message }] : [];
  for (const p of problems) {
    const name = String(p.field ?? "").replace(/^body\.?/, "").split(".")[0];
    const field = name ? FIELD_OF[name] ?? name : fallback;
    out[field] = out[field] ? `${out[field]}; ${p.message}` : String(p.message ?? err.message);
  }
  if (Object.keys(out).length === 0) out[fallback] = err.message;
  return out;
}
