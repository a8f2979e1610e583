// stylecam's status page: reads /api/status every second (and a camera's
// decisions on its detail view) and draws what it gets with textContent
// only (no markup from data). Its only writes are the Labels and Train
// views' (labels.js, teach.js), through window.stylecamPost.
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};
const POLL_MS = 1000;
let status = null;
let tiles = new Map();
let lastAnnounced = "";
// Views other scripts add (labels.js, teach.js): name → { tick(status,
// entered) }, shown at #<name> in a <section id="<name>"> with a nav link
// id="nav-<name>". `entered` is true on the first tick after the view
// was opened.
const extraViews = (window.stylecamViews = window.stylecamViews || {});
let lastPage = null;
// The page's writes (POST): the page session's anti-forgery token from
// /api/status goes in X-Stylecam-Csrf; the answer's JSON comes back (an
// error's is {error, fix}, thrown as an Error with .status and .body).
window.stylecamPost = async function (url, body, contentType) {
  if (!status || !status.csrf) status = await getJson("/api/status");
  const r = await fetch(url, {
    method: "POST",
    cache: "no-store",
    credentials: "same-origin",
    headers: { "Content-Type": contentType || "application/json", "X-Stylecam-Csrf": status.csrf },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  let data = null;
  try { data = await r.json(); } catch { data = null; }
  if (!r.ok) {
    const e = new Error((data && data.error) || url + ": " + r.status);
    e.status = r.status;
    e.body = data;
    throw e;
  }
  return data;
};
window.stylecamGetJson = (url) => getJson(url);


async function getJson(url) {
  const r = await fetch(url, { cache: "no-store", credentials: "same-origin" });
  if (!r.ok) throw new Error(url + ": " + r.status);
  return r.json();
}

function dl(target, rows) {
  target.replaceChildren();
  for (const [k, v] of rows) {
    target.append(el("dt", "", k), el("dd", "", v));
  }
}

// "none", or each reason with its count and when the broker last refused:
// a broker that refuses (e.g. its ACL) shows here at a glance.
function refusedText(d) {
  const reasons = Object.entries(d.refused || {});
  if (!reasons.length) return "none";
  return reasons.map(([r, n]) => r.replace(/_/g, " ") + " × " + n).join(", ") + " (last " + ago(d.last_refusal_s) + ")";
}

function ago(s) {
  if (s === null || s === undefined) return "never";
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

function tagText(tags) {
  return tags.length ? tags.join(", ") : "no tag";
}

// Outline kinds other than a subject's (a region, a person), as the
// legend names them.
const OUTLINE_KINDS = {
  subject: "",
  motion: "something moved",
  look: "detector looked here",
};

// People mode: what motion sees now and what it cost.
function motionText(m) {
  if (!m.enabled) return "off (the detector sees every frame detect_fps allows)";
  const now = m.calibrating ? "relearning the background" :
    m.moving ? "moving: " + m.boxes + (m.boxes === 1 ? " area, " : " areas, ") + (m.fraction * 100).toFixed(1) + "% of the frame" :
    "still";
  return now + " · " + m.mean_ms.toFixed(2) + " ms a frame · " + m.recalibrations + " recalibration" + (m.recalibrations === 1 ? "" : "s");
}

// People mode: the detector's runs per second now, and since start.
function detectorText(m) {
  const d = m.detector;
  let s = d.runs_per_s.toFixed(1) + " runs/s · " + d.whole + " whole, " + d.regions + " regions, " + d.skipped_frames + " frames skipped";
  if (m.regions_deferred) s += ", " + m.regions_deferred + " regions deferred";
  return s;
}

// One camera's tile: picture with outlines, state, tags, counters.
function tile(cam) {
  let t = tiles.get(cam.name);
  if (!t) {
    const li = el("li", "tile");
    li.dataset.camera = cam.name;
    const h = el("h4");
    const a = el("a", "", cam.name);
    a.href = "#camera=" + encodeURIComponent(cam.name);
    h.append(a);
    const pic = el("div", "picture");
    const img = el("img");
    img.alt = "Latest picture of camera " + cam.name + " (privacy masks painted)";
    img.width = 640;
    img.height = 360;
    const boxes = el("div", "boxes");
    pic.append(img, boxes);
    // What the motion and look outlines mean (shown only when drawn).
    const legend = el("ul", "legend");
    legend.setAttribute("aria-label", "Outlines on camera " + cam.name);
    const state = el("p", "state");
    const tags = el("ul", "tags");
    tags.setAttribute("aria-label", "Tags of camera " + cam.name);
    const facts = el("dl", "facts");
    li.append(h, pic, legend, state, tags, facts);
    t = { li, img, boxes, legend, state, tags, facts, pic };
    tiles.set(cam.name, t);
  }
  t.li.dataset.state = cam.state;
  t.state.textContent = cam.state;
  t.state.className = "state state-" + cam.state;
  if (status.snapshots) {
    t.pic.hidden = false;
    const url = "/api/snapshot?camera=" + encodeURIComponent(cam.name) + "&t=" + Date.now();
    if (!t.loading) {
      // Swap only once the next picture has loaded (no flicker).
      t.loading = true;
      const next = new Image();
      next.onload = () => { t.img.src = next.src; t.loading = false; };
      next.onerror = () => { t.loading = false; };
      next.src = url;
    }
  } else {
    t.pic.hidden = true;
  }
  const subjects = new Map(cam.subjects.map((s) => [s.id, s]));
  t.boxes.replaceChildren();
  // Where something moved and the squares the detector looked at go
  // under the people (subjects), unlabelled; the legend names them.
  const kinds = new Set();
  const order = { motion: 0, look: 1 };
  const outlines = [...cam.outlines].sort((a, b) => (order[a.kind] ?? 2) - (order[b.kind] ?? 2));
  for (const o of outlines) {
    const kind = OUTLINE_KINDS[o.kind] ? o.kind : "subject";
    kinds.add(kind);
    const b = el("div", kind === "subject" ? "box" : "box " + kind);
    b.dataset.kind = kind;
    b.style.left = (o.rect[0] * 100) + "%";
    b.style.top = (o.rect[1] * 100) + "%";
    b.style.width = ((o.rect[2] - o.rect[0]) * 100) + "%";
    b.style.height = ((o.rect[3] - o.rect[1]) * 100) + "%";
    if (kind === "subject") {
      const s = subjects.get(o.id);
      const label = (cam.mode === "people" ? "person " + o.id.slice(0, 4) : o.id) +
        (s ? ": " + tagText(s.tags) : "");
      b.append(el("span", "", label));
    }
    t.boxes.append(b);
  }
  t.legend.replaceChildren();
  for (const k of ["motion", "look"]) {
    if (!kinds.has(k)) continue;
    const li = el("li", "legend-" + k);
    li.append(el("span", "swatch " + k), document.createTextNode(OUTLINE_KINDS[k]));
    t.legend.append(li);
  }
  t.legend.hidden = t.legend.childElementCount === 0;
  t.tags.replaceChildren();
  if (cam.subjects.length === 0) {
    t.tags.append(el("li", "none", cam.mode === "people" ? "nobody tagged in view" : "no decision yet"));
  }
  for (const s of cam.subjects) {
    const who = s.kind === "frame" ? "" : (s.kind === "person" ? "person " + s.id.slice(0, 4) : s.id) + ": ";
    const li = el("li", "", who + tagText(s.tags));
    li.dataset.subject = s.id;
    t.tags.append(li);
  }
  const facts = [
    ["mode", cam.mode + " (" + cam.source + ")"],
    ["frames/s", cam.fps.toFixed(1)],
  ];
  if (cam.motion) facts.push(["motion", motionText(cam.motion)], ["detector", detectorText(cam.motion)]);
  facts.push(
    ["reconnects", String(cam.reconnects)],
    ["last error", cam.last_error || "none"],
  );
  dl(t.facts, facts);
  return t.li;
}

function renderEvents() {
  const list = $("events");
  list.replaceChildren();
  $("no-events").hidden = status.events.length > 0;
  for (const e of status.events) {
    const ev = e.event || {};
    const when = (ev.captured_at || "").replace("T", " ").replace(/\.\d+Z$/, "Z");
    const who = ev.person ? "person " + ev.person.slice(0, 4) + " " + (ev.event || "") :
      ev.region ? "region " + ev.region : "frame";
    const tags = (ev.tags || []).map((t) => t.id || t).join(", ") || "no tag";
    list.append(el("li", "", when + " · " + (ev.camera || e.topic) + " · " + who + " · " + tags));
  }
}

function render() {
  $("device").textContent = status.device;
  document.querySelector("form.signout").hidden = !status.signed_in;
  document.title = "stylecam · " + status.device;
  dl($("model"), [
    ["model", status.model],
    ["backend", status.backend],
    ["precision", status.precision],
    ["engine", status.engine || "none (no TensorRT)"],
    ["version", status.version],
  ]);
  const d = status.delivery;
  dl($("delivery"), [
    ["broker", d.connected ? "connected" : "not connected"],
    ["waiting in the outbox", String(d.backlog)],
    ["acknowledged", String(d.acked)],
    ["last acknowledgement", ago(d.last_ack_s)],
    ["refused by the broker", refusedText(d)],
    ["events decided", String(status.events_decided)],
  ]);
  const re = $("reload-error");
  re.hidden = !status.reload.last_error;
  re.textContent = status.reload.last_error ? "The last reload failed (the running pipeline goes on): " + status.reload.last_error : "";
  const list = $("cameras");
  const names = new Set(status.cameras.map((c) => c.name));
  for (const n of tiles.keys()) if (!names.has(n)) tiles.delete(n);
  list.replaceChildren(...status.cameras.map(tile));
  renderEvents();
  const troubled = status.cameras.filter((c) => c.state !== "streaming").map((c) => c.name + " " + c.state);
  const say = troubled.length ? "Cameras not streaming: " + troubled.join(", ") : "";
  if (say !== lastAnnounced) { $("announce").textContent = say; lastAnnounced = say; }
}

// A camera's detail: its tile and each subject's decision as a table-chart.
async function renderDetail(name) {
  const cam = status && status.cameras.find((c) => c.name === name);
  $("detail-title").textContent = "Camera " + name;
  const holder = $("detail-tile");
  if (cam) holder.replaceChildren(tile(cam));
  let d;
  try { d = await getJson("/api/camera?name=" + encodeURIComponent(name)); } catch (e) { return; }
  $("min-labels").textContent = d.min_labels;
  $("max-labels").textContent = d.max_labels;
  const out = $("decisions");
  out.replaceChildren();
  const ids = Object.keys(d.subjects);
  if (!ids.length) out.append(el("p", "", "No decision yet."));
  for (const id of ids) {
    const s = d.subjects[id];
    const title = s.kind === "frame" ? "The whole frame" : (s.kind === "person" ? "Person " + id.slice(0, 4) : "Region " + id);
    const table = el("table", "chart");
    table.append(el("caption", "", title + " · " + s.views + " view(s) · decided on " + s.at));
    const head = el("tr");
    for (const h of ["class", "probability", "threshold", "after relations (eq. 2)", "second threshold", "kept", "tag"]) {
      const th = el("th", "", h);
      th.scope = "col";
      head.append(th);
    }
    table.append(el("thead"));
    table.tHead.append(head);
    const body = el("tbody");
    d.classes.forEach(([cid, cname], i) => {
      const tr = el("tr");
      const kept = s.decided.includes(i);
      const tagged = s.tags.includes(i);
      if (kept) tr.className = "kept";
      const th = el("th", "", cname);
      th.scope = "row";
      tr.append(th, bar(s.probs[i], d.thresholds[i]), el("td", "num", fmt(d.thresholds[i])),
        bar(s.adjusted[i], d.second_thresholds[i]), el("td", "num", fmt(d.second_thresholds[i])),
        el("td", "", kept ? "yes" : "no"), el("td", "", tagged ? "yes" : "no"));
      tr.dataset.class = cid;
      body.append(tr);
    });
    table.append(body);
    out.append(table);
  }
}

function fmt(x) {
  return x >= 0.01 || x === 0 ? x.toFixed(3) : x.toExponential(1);
}

// A bar for the value with a mark at its threshold; the number is the text.
function bar(v, t) {
  const td = el("td", "bar");
  const track = el("span", "track");
  const fill = el("span", v >= t ? "fill over" : "fill");
  fill.style.width = Math.min(100, Math.max(0, v * 100)) + "%";
  const mark = el("span", "mark");
  mark.style.left = Math.min(100, Math.max(0, t * 100)) + "%";
  track.append(fill, mark);
  track.setAttribute("aria-hidden", "true");
  td.append(track, el("span", "num", fmt(v)));
  return td;
}

// Setup: check-config, the running config, the rectangle editor.
let rects = [];
let setupLoaded = false;
async function renderSetup() {
  const sel = $("editor-camera");
  if (status && sel.options.length !== status.cameras.length) {
    sel.replaceChildren(...status.cameras.map((c) => { const o = el("option", "", c.name); o.value = c.name; return o; }));
  }
  if (status && status.snapshots && sel.value) {
    $("editor-img").src = "/api/snapshot?camera=" + encodeURIComponent(sel.value) + "&t=" + Date.now();
  }
  drawRects();
  if (setupLoaded) return;
  setupLoaded = true;
  try {
    const c = await getJson("/api/config");
    $("config").textContent = c.config;
    $("check").textContent = (c.check.ok ? "OK: " : "Problem: ") + c.check.message;
    $("check").className = c.check.ok ? "ok" : "problem";
  } catch (e) {
    $("check").textContent = "Cannot read the config: " + e.message;
  }
}

function current() {
  const v = ["rx0", "ry0", "rx1", "ry1"].map((id) => Math.min(1, Math.max(0, parseFloat($(id).value) || 0)));
  return [Math.min(v[0], v[2]), Math.min(v[1], v[3]), Math.max(v[0], v[2]), Math.max(v[1], v[3])];
}

function drawRects() {
  const pic = $("editor-picture");
  pic.querySelectorAll(".box").forEach((b) => b.remove());
  const kind = document.querySelector("input[name=editor-kind]:checked").value;
  for (const [r, k, n] of [...rects, [current(), kind, $("editor-name").value + " (drawing)"]]) {
    const b = el("div", "box " + k);
    b.style.left = r[0] * 100 + "%"; b.style.top = r[1] * 100 + "%";
    b.style.width = (r[2] - r[0]) * 100 + "%"; b.style.height = (r[3] - r[1]) * 100 + "%";
    b.append(el("span", "", k === "mask" ? "mask" : n));
    pic.append(b);
  }
  const n2 = (x) => String(Math.round(x * 1000) / 1000);
  const list = (r) => "[" + r.map(n2).join(", ") + "]";
  const masks = rects.filter(([, k]) => k === "mask").map(([r]) => list(r));
  const regions = rects.filter(([, k]) => k === "region");
  let toml = "# in the [[cameras]] block with name = \"" + $("editor-camera").value + "\"\n";
  if (masks.length) toml += "masks = [" + masks.join(", ") + "]\n";
  if (regions.length) toml += "analyze = \"regions\"\n";
  for (const [r, , n] of regions) toml += "\n[[cameras.regions]]\nname = \"" + n + "\"\nrect = " + list(r) + "\n";
  $("snippet").value = rects.length ? toml : "# draw or type a rectangle, then press \"Add this rectangle\"\n";
}

function setupEditor() {
  const pic = $("editor-picture");
  let start = null;
  const at = (e) => {
    const b = pic.getBoundingClientRect();
    return [Math.min(1, Math.max(0, (e.clientX - b.left) / b.width)), Math.min(1, Math.max(0, (e.clientY - b.top) / b.height))];
  };
  const setNumbers = (a, b) => {
    const r = [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])];
    ["rx0", "ry0", "rx1", "ry1"].forEach((id, i) => { $(id).value = r[i].toFixed(3); });
    drawRects();
  };
  pic.addEventListener("pointerdown", (e) => { start = at(e); pic.setPointerCapture(e.pointerId); e.preventDefault(); });
  pic.addEventListener("pointermove", (e) => { if (start) setNumbers(start, at(e)); });
  pic.addEventListener("pointerup", (e) => { if (start) { setNumbers(start, at(e)); start = null; } });
  for (const id of ["rx0", "ry0", "rx1", "ry1", "editor-name"]) $(id).addEventListener("input", drawRects);
  document.querySelectorAll("input[name=editor-kind]").forEach((r) => r.addEventListener("change", drawRects));
  $("editor-camera").addEventListener("change", () => { rects = []; renderSetup(); });
  $("editor-add").addEventListener("click", () => {
    const kind = document.querySelector("input[name=editor-kind]:checked").value;
    const name = $("editor-name").value.replace(/[^A-Za-z0-9_-]/g, "-") || "region";
    rects.push([current(), kind, name]);
    if (kind === "region") $("editor-name").value = name.replace(/\d*$/, (d) => String((parseInt(d, 10) || 0) + 1));
    drawRects();
  });
  $("editor-clear").addEventListener("click", () => { rects = []; drawRects(); });
}

function view() {
  let h;
  try {
    h = decodeURIComponent(location.hash.slice(1));
  } catch {
    return ["overview", null]; // a malformed link (`#camera=%E0%A4%A`)
  }
  if (h.startsWith("camera=")) return ["detail", h.slice(7)];
  if (h === "setup") return ["setup", null];
  if (Object.hasOwn(extraViews, h)) return [h, null];
  return ["overview", null];
}

async function tick() {
  try {
    status = await getJson("/api/status");
    $("offline").hidden = true;
  } catch (e) {
    $("offline").hidden = false;
  }
  const [page, arg] = view();
  const pages = ["overview", "detail", "setup", ...Object.keys(extraViews)];
  for (const id of pages) if ($(id)) $(id).hidden = id !== page;
  for (const id of pages) {
    const nav = $("nav-" + id);
    if (nav) nav.setAttribute("aria-current", page === id ? "page" : "false");
  }
  const entered = page !== lastPage;
  lastPage = page;
  if (!status) return;
  if (page === "overview") render();
  else if (page === "detail") await renderDetail(arg);
  else if (page === "setup") await renderSetup();
  else await extraViews[page].tick(status, entered);
}

async function loop() {
  // One failed tick must not end the polling.
  try {
    if (!document.hidden) await tick();
  } finally {
    setTimeout(loop, POLL_MS);
  }
}

window.addEventListener("hashchange", () => { tiles = new Map(); tick(); $("main").focus(); });
setupEditor();
loop();
