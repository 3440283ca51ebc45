import { createI18n } from "vue-i18n";
import en from "./en.json";

/** All strings of the app come from one catalogue (en.json); English ships. */
export const i18n = createI18n({
  legacy: false,
  locale: navigator.language?.split("-")[0] || "en",
  fallbackLocale: "en",
  messages: { en },
  missingWarn: false,
  fallbackWarn: false,
});
