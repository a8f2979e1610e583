// Drives Debian's chromium (headless, through playwright-core) against a
// running daemon's status page; tests/status_page.rs starts the daemon with
// the fake V4L2 camera and reads the JSON this prints last.
//
// Environment:
//   BASE       the page from loopback, e.g. http://127.0.0.1:9464
//   OTHER      the same listener at a non-loopback address ("" to skip)
//   TOKEN      http.token, typed into the login form at OTHER
//   TAGGED     the camera whose picture alternates (tags must change)
//   MASKED     a camera with a privacy mask; MASK: the mask, "x0,y0,x1,y1"
//              in fractions of the frame; CONTROL: a camera with the same
//              picture and no mask
//   UNPLUGGED  the camera the fake unplugs; FAKE_LOG the fake's log file
//   SHOTS      a folder for overview.png and detail.png ("" for none)
//   CHROMIUM   the browser (default /usr/bin/chromium)
import { chromium } from "playwright-core";
import { readFileSync, existsSync } from "node:fs";

const env = (k, d) => process.env[k] ?? d;
const BASE = env("BASE");
const OTHER = env("OTHER", "");
const TAGGED = env("TAGGED");
const UNPLUGGED = env("UNPLUGGED");
const MASKED = env("MASKED");
const CONTROL = env("CONTROL");
const MASK = env("MASK").split(",").map(Number);
const SHOTS = env("SHOTS", "");
const result = { requests: [], steps: [] };
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
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
  ],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.on("request", (r) => result.requests.push(r.url()));
  const page = await context.newPage();
  page.on("console", (m) => { if (m.type() === "error") result.console_errors = (result.console_errors ?? []).concat(m.text()); });
  page.on("pageerror", (e) => { result.page_errors = (result.page_errors ?? []).concat(String(e)); });

  const tile = (cam) => `li.tile[data-camera="${cam}"]`;
  const stateOf = (cam) => page.$eval(`${tile(cam)} .state`, (e) => e.textContent).catch(() => null);
  const tagsOf = (cam) => page.$eval(`${tile(cam)} ul.tags`, (e) => e.textContent).catch(() => null);

  // The unplugged camera is watched from the start: when the fake logs the
  // unplug, and when the tile first says so.
  const unplug = { logged_ms: null, reconnecting_ms: null, recovered_ms: null };
  const watcher = (async () => {
    const end = Date.now() + 120_000;
    while (Date.now() < end && unplug.recovered_ms === null) {
      const log = existsSync(env("FAKE_LOG")) ? readFileSync(env("FAKE_LOG"), "utf8") : "";
      if (unplug.logged_ms === null && /^unplug /m.test(log)) unplug.logged_ms = Date.now() - t0;
      const s = await stateOf(UNPLUGGED);
      if (unplug.logged_ms !== null && unplug.reconnecting_ms === null && s === "reconnecting") {
        unplug.reconnecting_ms = Date.now() - t0;
      }
      if (unplug.reconnecting_ms !== null && s === "streaming") unplug.recovered_ms = Date.now() - t0;
      await sleep(100);
    }
  })();

  await page.goto(BASE + "/");
  step("overview loaded");
  // Each camera's tile: a loaded snapshot and a decision.
  for (const cam of [TAGGED, UNPLUGGED, CONTROL]) {
    await until(`${cam}'s snapshot`, 20_000, () =>
      page.$eval(`${tile(cam)} img`, (i) => i.complete && i.naturalWidth > 0).catch(() => false));
    await until(`${cam}'s tags`, 20_000, async () => {
      const t = await tagsOf(cam);
      return t && !t.includes("no decision yet");
    });
  }
  result.first_tags = await tagsOf(TAGGED);
  step(`snapshots and tags shown; ${TAGGED}: ${result.first_tags}`);

  // The picture alternates between two photos: the tags on the page follow.
  result.changed_tags = await until("the tags to change", 30_000, async () => {
    const t = await tagsOf(TAGGED);
    return t && t !== result.first_tags && !t.includes("no decision yet") ? t : null;
  });
  step(`tags changed: ${result.changed_tags}`);

  // The masked area is black in the snapshot the page shows; the rest is
  // not. The same area of the same picture on a camera without the mask
  // (the control) is measured the same way.
  const regionStats = (cam) => page.$eval(`${tile(cam)} img`, (img, m) => {
    const c = document.createElement("canvas");
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const g = c.getContext("2d");
    g.drawImage(img, 0, 0);
    const stats = (x0, y0, x1, y1) => {
      // A few pixels in from the edge: JPEG blurs the border.
      const px = (f, n) => Math.round(f * n);
      const ax = px(x0, c.width) + 4, ay = px(y0, c.height) + 4;
      const bx = px(x1, c.width) - 4, by = px(y1, c.height) - 4;
      const d = g.getImageData(ax, ay, bx - ax, by - ay).data;
      let sum = 0, max = 0;
      for (let i = 0; i < d.length; i += 4) {
        const v = (d[i] + d[i + 1] + d[i + 2]) / 3;
        sum += v;
        if (v > max) max = v;
      }
      return { mean: sum / (d.length / 4), max };
    };
    return {
      width: c.width,
      height: c.height,
      masked: stats(m[0], m[1], m[2], m[3]),
      rest: stats(m[2], 0, 1, 1),
    };
  }, MASK);
  result.mask = await regionStats(MASKED);
  result.mask_control = await regionStats(CONTROL);
  step(`mask: ${JSON.stringify(result.mask)}; without it: ${JSON.stringify(result.mask_control)}`);
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/overview.png`, fullPage: true });

  // A camera's detail: the decision as a chart (a table per class).
  await page.click(`${tile(TAGGED)} h4 a`);
  await until("the decision chart", 10_000, () =>
    page.$$eval("#decisions tbody tr", (rows) => rows.length).catch(() => 0));
  result.detail_rows = await page.$$eval("#decisions tbody tr", (rows) => rows.length);
  result.detail_kept = await page.$$eval("#decisions tbody tr.kept", (rows) => rows.length);
  step(`detail: ${result.detail_rows} classes, ${result.detail_kept} kept`);
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/detail.png`, fullPage: true });
  await page.click("a[href='#']");

  // The unplug (the fake unplugs after a number of frames): the tile says
  // so, then recovers.
  await watcher;
  result.unplug = unplug;
  step(`unplug: ${JSON.stringify(unplug)}`);

  // A malformed link (`%E0%A4%A` is not UTF-8): the page shows the
  // overview and keeps working.
  const bad = await context.newPage();
  bad.on("pageerror", (e) => { result.page_errors = (result.page_errors ?? []).concat(String(e)); });
  await bad.goto(BASE + "/#camera=%E0%A4%A");
  await until("the overview under a malformed link", 10_000, () =>
    bad.$eval(`#overview:not([hidden]) ${tile(TAGGED)}`, () => true).catch(() => false));
  await bad.click(`${tile(TAGGED)} h4 a`);
  await until("a camera's detail after a malformed link", 10_000, () =>
    bad.$$eval("#decisions tbody tr", (rows) => rows.length).catch(() => 0));
  result.malformed_link = "overview, then a camera's detail";
  step(`malformed link: ${result.malformed_link}`);
  await bad.close();

  // Beyond loopback: refused without the token, let in with it.
  if (OTHER) {
    const other = await browser.newContext();
    other.on("request", (r) => result.requests.push(r.url()));
    const p = await other.newPage();
    const api = await p.goto(OTHER + "/api/status");
    result.other_api_status = api.status();
    const front = await p.goto(OTHER + "/");
    result.other_page_status = front.status();
    await p.fill("input[name=token]", env("TOKEN"));
    await Promise.all([p.waitForNavigation(), p.click("button[type=submit]")]);
    await until("the page after the login", 20_000, () =>
      p.$eval(tile(TAGGED), () => true).catch(() => false));
    result.other_after_login = true;
    step(`beyond loopback: ${result.other_api_status} / ${result.other_page_status} without the token; page shown after the login`);
    await other.close();
  }
  await context.close();
} catch (e) {
  result.error = String(e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
