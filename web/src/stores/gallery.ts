/** The list the lightbox pages through: whichever grid opened it registers its photos here. */
import { defineStore } from "pinia";
import { markRaw } from "vue";
import type { PhotoSummary } from "@/api/types";

export interface GalleryUrls {
  thumb: (p: PhotoSummary, size: string) => string;
  original?: (p: PhotoSummary) => string;
  /** share links: photos come from the link, not the library */
  share?: { token: string; session: string | null; download: boolean };
}

export const useGallery = defineStore("gallery", {
  state: () => ({ list: [] as PhotoSummary[], urls: null as GalleryUrls | null }),
  actions: {
    set(list: PhotoSummary[], urls: GalleryUrls | null = null) {
      this.list = markRaw(list);
      this.urls = urls ? markRaw(urls) : null;
    },
  },
});
