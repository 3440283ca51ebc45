/** Selected photos (x, shift-click); curation actions come in part 2, the selection model now. */
import { defineStore } from "pinia";

export const useSelection = defineStore("selection", {
  state: () => ({ ids: new Set<string>(), anchor: null as string | null }),
  getters: { count: (s) => s.ids.size },
  actions: {
    toggle(id: string) {
      const next = new Set(this.ids);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      this.ids = next;
      this.anchor = id;
    },
    clear() {
      this.ids = new Set();
      this.anchor = null;
    },
  },
});
