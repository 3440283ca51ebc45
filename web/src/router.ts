import { createRouter, createWebHistory, type RouteRecordRaw } from "vue-router";
import { useSession } from "./stores/session";
import TimelineView from "./views/timeline/TimelineView.vue";
import LoginView from "./views/login/LoginView.vue";
import SetupView from "./views/setup/SetupView.vue";
import SearchView from "./views/search/SearchView.vue";

const QueryView = () => import("./views/query/QueryView.vue");

const routes: RouteRecordRaw[] = [
  { path: "/", name: "timeline", component: TimelineView },
  { path: "/setup", name: "setup", component: SetupView, meta: { public: true, bare: true } },
  { path: "/login", name: "login", component: LoginView, meta: { public: true, bare: true } },
  { path: "/search", name: "search", component: SearchView },
  { path: "/map", name: "map", component: () => import("./views/map/MapView.vue") },
  { path: "/albums", name: "albums", component: () => import("./views/albums/AlbumsView.vue") },
  { path: "/albums/:id", name: "album", component: () => import("./views/albums/AlbumView.vue") },
  { path: "/people", name: "people", component: () => import("./views/people/PeopleView.vue") },
  { path: "/people/:id", name: "person", component: () => import("./views/people/PersonView.vue") },
  { path: "/labels", name: "labels", component: () => import("./views/labels/LabelsView.vue") },
  { path: "/places", name: "places", component: () => import("./views/places/PlacesView.vue") },
  { path: "/calendar", name: "calendar", component: () => import("./views/calendar/CalendarView.vue") },
  { path: "/folders", name: "folders", component: () => import("./views/folders/FoldersView.vue") },
  { path: "/moments", name: "moments", component: () => import("./views/moments/MomentsView.vue") },
  { path: "/onthisday", name: "onthisday", component: () => import("./views/onthisday/OnThisDayView.vue") },
  { path: "/favorites", name: "favorites", component: QueryView, props: { preset: "favorite:true", titleKey: "favorites.title", emptyKey: "favorites" } },
  { path: "/archive", name: "archive", component: QueryView, props: { preset: "archived:true", titleKey: "archive.title", emptyKey: "archive" } },
  { path: "/review", name: "review", component: QueryView, props: { preset: "review:true", titleKey: "review.title", emptyKey: "review" } },
  { path: "/similar/:id", name: "similar", component: () => import("./views/similar/SimilarView.vue") },
  { path: "/photo/:id", name: "photo", component: () => import("./views/photo/PhotoView.vue") },
  { path: "/s/:token", name: "share", component: () => import("./views/share/ShareView.vue"), meta: { public: true, bare: true, guest: true } },
  { path: "/:rest(.*)*", name: "notfound", component: () => import("./views/NotFound.vue") },
];

export const router = createRouter({
  history: createWebHistory(),
  routes,
  // views keep their own scroll containers (restored on activation); the window does not scroll
  scrollBehavior: () => false as unknown as undefined,
});

router.beforeEach(async (to) => {
  if (to.meta.guest) return true;
  const session = useSession();
  await session.start();
  if (session.setupNeeded && to.name !== "setup") return { name: "setup" };
  if (!session.setupNeeded && to.name === "setup") return { name: "login" };
  if (to.meta.public) {
    if (to.name === "login" && session.signedIn) return (to.query.next as string) || "/";
    return true;
  }
  if (!session.signedIn) return { name: "login", query: to.fullPath !== "/" ? { next: to.fullPath } : {} };
  return true;
});
