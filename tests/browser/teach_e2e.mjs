// Issue 37 end to end in Chromium (headless, through playwright-core):
// tests/teach_e2e.rs runs a people-mode daemon collecting crops from
// vtest.avi and calls this once per PHASE, checking MQTT and the files in
// between; each run prints a JSON result last.
//
//   PHASE=label     writes the taxonomy (TAXONOMY, comma-separated) on the
//                   Labels view, then labels by keyboard every crop the page
//                   shows that PLAN (a JSON file: image -> class ids) names,
//                   up to COUNT: the digits that make the boxes the plan's,
//                   then Enter. Crops the plan lacks are passed by (→).
//   PHASE=train     starts a training from the Train view, records its
//                   progress, waits for the comparison (screenshot
//                   SHOTS/teach-compare.png), presses Switch and waits for
//                   the daemon to serve the new bundle.
//   PHASE=rollback  presses Rollback and waits for the old model.
//
// Environment: BASE (the page from loopback), CHROMIUM (default
// /usr/bin/chromium), SHOTS ("" for none), PLAN, COUNT, TAXONOMY.
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";

const env = (k, d) => process.env[k] ?? d;
const BASE = env("BASE");
const PHASE = env("PHASE");
const SHOTS = env("SHOTS", "");
const result = { phase: PHASE, steps: [] };
const t0 = Date.now();
const step = (what) => {
  result.steps.push([Date.now() - t0, what]);
  console.error(`[${PHASE} ${((Date.now() - t0) / 1000).toFixed(1)} s] ${what}`);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, timeoutMs, probe) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

async function label(page) {
  const taxonomy = env("TAXONOMY").split(",");
  const plan = JSON.parse(readFileSync(env("PLAN"), "utf8"));
  const count = Number(env("COUNT", "20"));
  result.labelled = [];
  result.passed = 0;
  await page.click("#nav-labels");
  const currentImage = () => page.$eval("#label-current", (e) => e.dataset.image || "").catch(() => "");
  await until("the first crop on the Labels view", 20_000, currentImage);
  step("the Labels view shows its first crop");

  // A new taxonomy, written on the page.
  await page.fill("#labels-taxonomy", taxonomy.join("\n"));
  await page.click("#labels-taxonomy-save");
  result.taxonomy_said = await until("the taxonomy's save", 10_000, async () => {
    const said = await text(page, "#labels-taxonomy-said");
    if (said.startsWith("Not saved")) throw new Error(said);
    return said.startsWith("Saved") ? said : null;
  });
  const boxes = () => page.$$eval("#label-classes input[type=checkbox]", (b) => b.map((x) => [x.dataset.class, x.checked]));
  await until("the new taxonomy's boxes", 10_000, async () =>
    JSON.stringify((await boxes()).map(([c]) => c)) === JSON.stringify(taxonomy));
  step(`taxonomy ${taxonomy.join(", ")} written on the page`);
  // Keyboard from here: the focus off the text area.
  await page.evaluate(() => document.activeElement && document.activeElement.blur());

  // The page's next page of crops, when it has one.
  const nextPage = async (image) => {
    if (await page.$eval("#label-next-page", (b) => b.offsetParent === null || b.closest("[hidden]") !== null).catch(() => true)) return false;
    await page.click("#label-next-page");
    return until("the next page", 5_000, async () => (await currentImage()) !== image).catch(() => false);
  };
  // All crops, page after page (the unlabelled list's next page would
  // start anew with the crops passed by).
  await page.selectOption("#labels-show", "all");
  await sleep(1_000);
  await until("the list of all crops", 10_000, async () => (await currentImage()) !== "");
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  const seen = new Set();
  while (result.labelled.length < count) {
    const image = await currentImage();
    if (!image) {
      // Past the page's last crop (it was saved): the next page, if any.
      if (!(await nextPage(image))) break;
      continue;
    }
    const want = seen.has(image) ? null : plan[image];
    seen.add(image);
    if (!want) {
      await page.keyboard.press("ArrowRight");
      const moved = await until("the next crop", 2_000, async () => (await currentImage()) !== image).catch(() => false);
      if (!moved && !(await nextPage(image))) break; // the end of the list
      result.passed += 1;
      continue;
    }
    const shown = await boxes();
    const pressed = [];
    shown.forEach(([c, on], i) => { if (on !== want.includes(c)) pressed.push(i + 1); });
    for (const k of pressed) await page.keyboard.press(String(k));
    const after = (await boxes()).filter(([, on]) => on).map(([c]) => c);
    await page.keyboard.press("Enter");
    await until(`the save of ${image}`, 10_000, async () => {
      const said = await text(page, "#label-said");
      if (said.startsWith("Not saved")) throw new Error(said);
      return said.startsWith(`Saved ${image}`);
    });
    result.labelled.push({ image, shown: shown.filter(([, on]) => on).map(([c]) => c), pressed, after });
    const moved = await until("the next crop", 3_000, async () => (await currentImage()) !== image).catch(() => false);
    if (!moved && !(await nextPage(image))) break;
  }
  step(`${result.labelled.length} crops labelled by keyboard (${result.passed} passed by)`);
}

async function train(page) {
  await page.click("#nav-teach");
  await until("the Train view", 10_000, () => page.$eval("#teach", (s) => !s.hidden).catch(() => false));
  await until("Start enabled", 20_000, () => page.$eval("#teach-start", (b) => !b.disabled).catch(() => false));
  result.store_before = await text(page, "#teach-store");
  await page.click("#teach-start");
  step("training started");
  const progress = new Set();
  await until("the comparison", 240_000, async () => {
    const p = await text(page, "#teach-state");
    if (p.includes(" — ")) progress.add(p.split(" — ")[1].replace(/, \d+ s$/, ""));
    return page.$eval("#teach-result", (d) => !d.hidden).catch(() => false);
  });
  result.progress = [...progress];
  step("the comparison shows");
  result.state = await text(page, "#teach-state");
  result.scores = await page.$$eval("#teach-scores tbody tr", (rows) =>
    rows.map((r) => Array.from(r.children).map((c) => c.textContent)));
  await until("the held-out crops' pictures", 10_000, () =>
    page.$$eval("#teach-examples img", (imgs) => imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0)).catch(() => false));
  if (SHOTS) {
    await page.$eval("#teach-result", (d) => d.scrollIntoView());
    await page.screenshot({ path: `${SHOTS}/teach-compare.png`, fullPage: true });
  }
  await page.click("#teach-switch");
  result.switched = await until("the switch's answer", 60_000, async () => {
    const said = await text(page, "#teach-said");
    return said.startsWith("Switched to") ? said : null;
  });
  result.model = await until("the daemon serving the new bundle", 120_000, async () => {
    const m = await model(page);
    return m && m.startsWith("store-quick") ? m : null;
  });
  step(`switched: ${result.model}`);
}

async function rollback(page) {
  await page.click("#nav-teach");
  await until("Rollback enabled", 20_000, () => page.$eval("#teach-rollback", (b) => !b.disabled).catch(() => false));
  await page.click("#teach-rollback");
  result.rolled_back = await until("the rollback's answer", 60_000, async () => {
    const said = await text(page, "#teach-said");
    return said.startsWith("Rolled back to") ? said : null;
  });
  result.model = await until("the daemon serving the old bundle", 120_000, async () => {
    const m = await model(page);
    return m && !m.startsWith("store-quick") ? m : null;
  });
  step(`rolled back: ${result.model}`);
}

const text = (page, sel) => page.$eval(sel, (e) => e.textContent).catch(() => "");
const model = (page) => page.evaluate(async () => (await (await fetch("/api/status")).json()).model);

const browser = await chromium.launch({
  executablePath: env("CHROMIUM", "/usr/bin/chromium"),
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1400 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => { result.page_errors = (result.page_errors ?? []).concat(String(e)); });
  await page.goto(`${BASE}/`);
  if (PHASE === "label") await label(page);
  else if (PHASE === "train") await train(page);
  else if (PHASE === "rollback") await rollback(page);
  else throw new Error(`unknown PHASE ${PHASE}`);
  await context.close();
} catch (e) {
  result.error = String(e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
