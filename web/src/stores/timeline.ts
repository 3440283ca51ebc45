/**
 * Timeline buckets, per query: the month list for the whole result in one call (so the scroll
 * height and scrubber are right at once) and each month's photos, fetched when near the viewport
 * and dropped when far. Kept per query so that coming back to a view finds what it had.
 */
import { defineStore } from "pinia";
import { markRaw, shallowReactive, triggerRef, shallowRef } from "vue";
import { api } from "@/api/client";
import type { MonthsAnswer, MonthPhotos, PhotoSummary } from "@/api/types";

export interface Month {
  key: string; // "2019-07" or "undated"
  count: number;
  photos: PhotoSummary[] | null;
  loading: boolean;
  error: string;
  /** measured height at the width it was laid out for (0: use the estimate) */
  height: number;
  width: number;
}

export class Buckets {
  months = shallowRef<Month[]>([]);
  total = shallowRef(0);
  loaded = shallowRef(false);
  error = shallowRef<{ message: string; details?: any } | null>(null);
  version = shallowRef(0);
  private inflight = 0;
  private queue: number[] = [];

  constructor(public q: string) {}

  async loadMonths(): Promise<void> {
    try {
      const ans = await api.get<MonthsAnswer>("/timeline/months", { q: this.q });
      const old = new Map(this.months.value.map((m) => [m.key, m]));
      const list: Month[] = ans.months.map((m) => {
        const prev = old.get(m.month);
        if (prev && prev.count === m.count) return prev;
        return shallowReactive({ key: m.month, count: m.count, photos: null, loading: false, error: "", height: 0, width: 0 });
      });
      if (ans.undated) {
        const prev = old.get("undated");
        list.push(prev && prev.count === ans.undated ? prev : shallowReactive({
          key: "undated", count: ans.undated, photos: null, loading: false, error: "", height: 0, width: 0,
        }));
      }
      this.months.value = list;
      this.total.value = ans.total;
      this.error.value = null;
      // months whose count changed and that were on screen: fetch again
      for (const [i, m] of list.entries()) {
        const prev = old.get(m.key);
        if (prev && prev !== m && prev.photos) this.want(i);
      }
    } catch (e: any) {
      this.error.value = { message: e.message ?? String(e), details: e.details };
    } finally {
      this.loaded.value = true;
      this.bump();
    }
  }

  bump(): void {
    this.version.value++;
    triggerRef(this.months);
  }

  /** Asks for a month's photos; at most 3 requests at once, nearest first. */
  want(i: number): void {
    const m = this.months.value[i];
    if (!m || m.photos || m.loading || this.queue.includes(i)) return;
    this.queue.push(i);
    this.pump();
  }

  private pump(): void {
    while (this.inflight < 3 && this.queue.length) {
      const i = this.queue.shift()!;
      const m = this.months.value[i];
      if (!m || m.photos || m.loading) continue;
      this.inflight++;
      m.loading = true;
      api
        .get<MonthPhotos>(`/timeline/months/${m.key}`, { q: this.q })
        .then((ans) => {
          m.photos = markRaw(ans.photos);
          m.error = "";
        })
        .catch((e) => (m.error = e.message ?? String(e)))
        .finally(() => {
          m.loading = false;
          this.inflight--;
          this.bump();
          this.pump();
        });
    }
  }

  /** Forgets photos of months far from the viewport (their measured height is kept). */
  dropFar(first: number, last: number, keep = 8): void {
    for (const [i, m] of this.months.value.entries()) {
      if (m.photos && (i < first - keep || i > last + keep)) m.photos = null;
    }
    this.queue = this.queue.filter((i) => i >= first - keep && i <= last + keep);
  }

  /** All loaded photos in display order (the lightbox's list). */
  loadedPhotos(): PhotoSummary[] {
    const out: PhotoSummary[] = [];
    for (const m of this.months.value) if (m.photos) out.push(...m.photos);
    return out;
  }
}

export const useTimeline = defineStore("timeline", () => {
  const sets = new Map<string, Buckets>();
  function bucketsFor(q: string): Buckets {
    let b = sets.get(q);
    if (!b) {
      b = new Buckets(q);
      sets.set(q, b);
      if (sets.size > 12) sets.delete(sets.keys().next().value as string);
    }
    return b;
  }
  /** Something changed in the library (live event): every kept timeline re-reads its months. */
  function refreshAll(): void {
    for (const b of sets.values()) if (b.loaded.value) void b.loadMonths();
  }
  /** Logout or an ended session: nothing of this library stays in memory for the next user. */
  function clear(): void {
    sets.clear();
  }
  return { bucketsFor, refreshAll, clear };
});
