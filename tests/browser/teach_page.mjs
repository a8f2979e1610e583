// The Train view in Chromium (headless, through playwright-core):
// tests/teach_page.rs starts the daemon with labelled crops and the demo
// bundle in the store; this opens #teach by its nav link, starts a
// training, waits for the comparison, switches, waits for the daemon to
// serve the new bundle, rolls back, and prints a JSON result last.
//
// Environment:
//   BASE      the page from loopback, e.g. http://127.0.0.1:9464
//   SHOTS     a folder for teach.png ("" for none)
//   CHROMIUM  the browser (default /usr/bin/chromium)
import { chromium } from "playwright-core";

const env = (k, d) => process.env[k] ?? d;
const BASE = env("BASE");
const SHOTS = env("SHOTS", "");
const result = { steps: [] };
const t0 = Date.now();
const step = (what) => {
  result.steps.push([Date.now() - t0, what]);
  console.error(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${what}`);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, timeoutMs, probe) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

const browser = await chromium.launch({
  executablePath: env("CHROMIUM", "/usr/bin/chromium"),
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1400 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => { result.page_errors = (result.page_errors ?? []).concat(String(e)); });
  const text = (sel) => page.$eval(sel, (e) => e.textContent).catch(() => "");
  const model = () => page.evaluate(async () => (await (await fetch("/api/status")).json()).model);

  await page.goto(`${BASE}/`);
  await page.click("#nav-teach");
  await until("the Train view", 10_000, () => page.$eval("#teach", (s) => !s.hidden).catch(() => false));
  await until("the store's bundles", 10_000, async () => (await text("#teach-store")).includes("current"));
  result.store_before = await text("#teach-store");
  await until("Start enabled", 10_000, () => page.$eval("#teach-start", (b) => !b.disabled).catch(() => false));
  step("the Train view is open");
  await page.click("#teach-start");
  await until("the comparison", 300_000, () => page.$eval("#teach-result", (d) => !d.hidden).catch(() => false));
  step("the comparison shows");
  result.state = await text("#teach-state");
  result.scores = await page.$$eval("#teach-scores tbody tr", (rows) =>
    rows.map((r) => Array.from(r.children).map((c) => c.textContent)));
  await until("the held-out crops' pictures", 10_000, () =>
    page.$$eval("#teach-examples img", (imgs) => imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0)).catch(() => false));
  result.examples = await page.$$eval("#teach-examples li", (lis) => lis.map((li) => li.querySelector("dl").textContent));
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/teach.png`, fullPage: true });

  await page.click("#teach-switch");
  await until("the switch's answer", 60_000, async () => (await text("#teach-said")).startsWith("Switched to"));
  result.switched = await text("#teach-said");
  result.model_after_switch = await until("the daemon serving the new bundle", 120_000, async () => {
    const m = await model();
    return m && m.startsWith("store-quick") ? m : null;
  });
  step("switched");
  await until("Rollback enabled", 10_000, () => page.$eval("#teach-rollback", (b) => !b.disabled).catch(() => false));
  await page.click("#teach-rollback");
  await until("the rollback's answer", 60_000, async () => (await text("#teach-said")).startsWith("Rolled back to"));
  result.rolled_back = await text("#teach-said");
  result.model_after_rollback = await until("the daemon serving the demo again", 120_000, async () => {
    const m = await model();
    return m && m.startsWith("stylecam-demo") ? m : null;
  });
  step("rolled back");
} catch (e) {
  result.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
