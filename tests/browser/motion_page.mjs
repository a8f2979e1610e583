// Watches one people-mode camera's tile on the status page while the
// daemon plays a store-day stream (tests/motion_telemetry.rs starts it):
// how each outline kind is drawn, and whether the legend names exactly the
// kinds drawn (hidden when none). Prints a JSON result as its last line.
//
// Environment:
//   BASE      the page, e.g. http://127.0.0.1:9464
//   CAMERA    the people-mode camera
//   SHOT      a PNG of the tile while motion is drawn ("" for none)
//   CHROMIUM  the browser (default /usr/bin/chromium)
import { chromium } from "playwright-core";

const env = (k, d) => process.env[k] ?? d;
const BASE = env("BASE");
const CAMERA = env("CAMERA");
const SHOT = env("SHOT", "");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const result = {
  drawn: { subject: 0, motion: 0, look: 0 },
  styles: {},
  legend_mismatches: 0,
  mismatch_examples: [],
  plain_looks: 0,
  facts_motion: false,
  samples: 0,
};

const browser = await chromium.launch({
  executablePath: env("CHROMIUM", "/usr/bin/chromium"),
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (e) => { result.page_errors = (result.page_errors ?? []).concat(String(e)); });
  await page.goto(BASE + "/");
  const tile = `li.tile[data-camera="${CAMERA}"]`;
  const end = Date.now() + 110_000;
  let shot = false;
  for (;;) {
    const s = await page.$eval(tile, (li) => {
      const boxes = [...li.querySelectorAll(".boxes .box")].map((b) => {
        const c = getComputedStyle(b);
        return {
          kind: b.dataset.kind,
          style: c.borderTopStyle,
          width: c.borderTopWidth,
          color: c.borderTopColor,
          labelled: b.textContent.length > 0,
        };
      });
      const legend = li.querySelector(".legend");
      return {
        state: li.dataset.state,
        boxes,
        legendShown: !legend.hidden && getComputedStyle(legend).display !== "none",
        legend: [...legend.children].map((e) => e.className.replace("legend-", "")).sort(),
        facts: li.querySelector(".facts").textContent,
      };
    }).catch(() => null);
    if (s) {
      result.samples++;
      const kinds = new Set();
      for (const b of s.boxes) {
        result.drawn[b.kind] = (result.drawn[b.kind] ?? 0) + 1;
        result.styles[b.kind] = { style: b.style, width: b.width, color: b.color, labelled: b.labelled };
        if (b.kind !== "subject") kinds.add(b.kind);
      }
      const want = [...kinds].sort();
      const ok = want.length ? s.legendShown && want.join() === s.legend.join() : !s.legendShown;
      if (!ok) {
        result.legend_mismatches++;
        if (result.mismatch_examples.length < 3) result.mismatch_examples.push({ drawn: want, legend: s.legend, shown: s.legendShown });
      }
      if (!want.length) result.plain_looks++;
      if (/motion/.test(s.facts) && /detector/.test(s.facts)) result.facts_motion = true;
      if (SHOT && !shot && kinds.has("motion")) {
        await page.locator(tile).screenshot({ path: SHOT });
        shot = true;
      }
      if (s.state === "ended") break;
    }
    if (Date.now() > end) throw new Error("timed out waiting for the camera to end");
    await sleep(250);
  }
} catch (e) {
  result.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
