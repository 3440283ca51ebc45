/** Indexing progress and connectivity, for the slim progress line and the offline badge. */
import { defineStore } from "pinia";

export const useStatus = defineStore("status", {
  state: () => ({
    online: typeof navigator === "undefined" ? true : navigator.onLine,
    indexing: false,
    done: 0,
    queued: 0,
  }),
});
