// Labels crops by keyboard on the daemon's Labels view (Debian's chromium,
// headless, through playwright-core); tests/labels_page.rs starts the daemon
// with a crops folder and reads the JSON this prints last: per crop, the
// boxes the page showed pre-filled and the digits pressed before Enter.
//
// Environment:
//   BASE      the page from loopback, e.g. http://127.0.0.1:9464
//   COUNT     how many crops to label (default 20)
//   SHOTS     a folder for labels.png ("" for none)
//   CHROMIUM  the browser (default /usr/bin/chromium)
import { chromium } from "playwright-core";

const env = (k, d) => process.env[k] ?? d;
const BASE = env("BASE");
const COUNT = Number(env("COUNT", "20"));
const SHOTS = env("SHOTS", "");
const result = { labelled: [], steps: [] };
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
    await sleep(50);
  }
}

const browser = await chromium.launch({
  executablePath: env("CHROMIUM", "/usr/bin/chromium"),
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("console", (m) => { if (m.type() === "error") result.console_errors = (result.console_errors ?? []).concat(m.text()); });
  page.on("pageerror", (e) => { result.page_errors = (result.page_errors ?? []).concat(String(e)); });

  await page.goto(`${BASE}/`);
  // To the view by its nav link, as a person would.
  await page.click("#nav-labels");
  const currentImage = () => page.$eval("#label-current", (e) => e.dataset.image || "").catch(() => "");
  await until("the first crop on the Labels view", 20_000, currentImage);
  await until("the crop's picture", 10_000, () =>
    page.$eval("#label-current-img", (i) => i.complete && i.naturalWidth > 0).catch(() => false));
  step("the Labels view shows its first crop");
  // Wait for the grid's pictures, for the screenshot.
  await until("the grid's pictures", 10_000, () =>
    page.$$eval("#label-grid img", (imgs) => imgs.length > 0 && imgs.slice(0, 12).every((i) => i.complete && i.naturalWidth > 0)).catch(() => false));

  for (let n = 0; n < COUNT; n++) {
    const image = await currentImage();
    if (!image) throw new Error(`no crop left after ${n}`);
    const shown = await page.$$eval("#label-classes input[type=checkbox]", (boxes) => boxes.map((b) => b.checked));
    // A different set of keys for each crop: none, one, two, the same twice.
    const plans = [[], [1], [2, 3], [3], [1, 1], [2], [1, 3], [3, 2, 1]];
    const pressed = plans[n % plans.length];
    for (const k of pressed) await page.keyboard.press(String(k));
    const after = await page.$$eval("#label-classes input[type=checkbox]", (boxes) => boxes.map((b) => b.checked));
    if (n === 2 && SHOTS) {
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: `${SHOTS}/labels.png` });
    }
    await page.keyboard.press("Enter");
    await until(`the save of ${image}`, 10_000, async () => {
      const said = await page.$eval("#label-said", (e) => e.textContent).catch(() => "");
      if (said.startsWith("Not saved")) throw new Error(said);
      return said.startsWith(`Saved ${image}`);
    });
    result.labelled.push({ image, shown, pressed, after });
    if (n + 1 < COUNT) await until("the next crop", 10_000, async () => (await currentImage()) !== image);
  }
  step(`${COUNT} crops labelled by keyboard`);

  // `x` discards the next crop, and the page says so.
  await until("the next crop", 10_000, async () => (await currentImage()) !== result.labelled.at(-1).image);
  const doomed = await currentImage();
  await page.keyboard.press("x");
  await until(`the discard of ${doomed}`, 10_000, async () => {
    const said = await page.$eval("#label-said", (e) => e.textContent).catch(() => "");
    if (said.startsWith("Not discarded")) throw new Error(said);
    return said.startsWith(`Discarded ${doomed}`);
  });
  result.discarded = doomed;
  step(`discarded ${doomed} with x`);

  // An upload with wrong lines: each shown with its line, nothing taken.
  const bad = `image,casual,formal,punk\nnot-a-crop-20261207T210000.000Z-0000000000000000-1.png,1,0,0\n`;
  await page.setInputFiles("#labels-file", { name: "bad.csv", mimeType: "text/csv", buffer: Buffer.from(bad) });
  await page.click("#labels-upload button[type=submit]");
  result.upload_problems = await until("the upload's problems", 10_000, async () => {
    const items = await page.$$eval("#labels-upload-problems li", (li) => li.map((e) => e.textContent));
    return items.length ? items : null;
  });
  step(`the bad upload: ${result.upload_problems.length} problems shown`);
  await context.close();
} catch (e) {
  result.error = String(e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
