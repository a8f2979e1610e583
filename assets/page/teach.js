// The Train view (#teach, issue 37 "check, then switch"): start or stop a
// quick training on the labelled crops, follow its progress, then see the
// new bundle beside the current one on the same held-out crops (per-class
// and macro F2, and what each says of some crops) before switching to it;
// roll back to the previous bundle in one click. Reads /api/teach every
// second while the view is open and /api/bundles when it opens or after a
// switch. Writes go through window.stylecamPost (app.js: the page
// session's anti-forgery token). Data is drawn with textContent only.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const errorText = (e) => e.message + (e.body && e.body.fix ? " Fix: " + e.body.fix : "");
  const f2 = (v) => (v === null || v === undefined ? "–" : v.toFixed(3));
  // How far a run is, from its phase: features are most of the time.
  const PHASES = { starting: [0, 0], features: [0, 0.6], head: [0.6, 0.85], tune: [0.85, 0.92], export: [0.92, 0.97], compare: [0.97, 1] };
  const EXAMPLES = 12;
  let shown = null; // the run id and state whose result is drawn
  let busy = false; // a write is under way

  function say(text, bad) {
    const p = $("teach-said");
    p.textContent = text;
    p.className = bad ? "problem" : "";
  }

  async function post(url, body, what) {
    if (busy) return null;
    busy = true;
    try {
      const r = await window.stylecamPost(url, body || {});
      return r;
    } catch (e) {
      say(what + ": " + errorText(e), true);
      return null;
    } finally {
      busy = false;
    }
  }

  function progressOf(p) {
    const [from, to] = PHASES[p.phase] || [0, 1];
    const within = p.total > 0 ? p.done / p.total : 0;
    return from + (to - from) * within;
  }

  function drawRun(data) {
    const run = data.run;
    const running = data.running !== null && data.running !== undefined;
    $("teach-start").disabled = running || !data.labels;
    $("teach-stop").hidden = !running;
    const bar = $("teach-progress");
    if (!run) {
      $("teach-state").textContent = data.labels
        ? "No training yet."
        : "Nothing is labelled yet: label crops in the Labels view first.";
      bar.hidden = true;
      $("teach-result").hidden = true;
      $("teach-log").textContent = "";
      return;
    }
    let text = "Run " + run.id + " (started " + run.started_at + "): " + run.state;
    if (run.state === "running" && run.progress) {
      const p = run.progress;
      text += " — " + p.phase + (p.total ? " " + p.done + "/" + p.total : "") + ", " + Math.round(p.elapsed_s) + " s";
      bar.hidden = false;
      bar.value = progressOf(p);
      bar.textContent = Math.round(bar.value * 100) + " %";
    } else {
      bar.hidden = true;
    }
    if (run.state === "failed") text += ": " + run.error;
    if (run.state === "stopped") text += ": " + run.reason;
    $("teach-state").textContent = text;
    $("teach-state").className = run.state === "failed" ? "problem" : "";
    $("teach-log").textContent = (run.log || []).join("\n");
    const key = run.id + " " + run.state;
    if (key === shown) return;
    shown = key;
    // "…started." is stale once the run has ended.
    if (run.state !== "running") say("", false);
    if (run.state === "finished") drawReport(run.id, run.report);
    else $("teach-result").hidden = true;
  }

  function drawReport(id, r) {
    $("teach-result").hidden = false;
    $("teach-switch").dataset.run = id;
    $("teach-counts").textContent =
      "Trained on " + r.train_crops + " crops of " + r.train_persons + " people in " + Math.round(r.seconds) +
      " s; held out: " + r.val_crops + " crops of " + r.val_persons + " other people (never the same person on both sides).";
    const current = new Map((r.current ? r.current.per_class_f2 : []).map(([c, v]) => [c, v]));
    const body = $("teach-scores").tBodies[0];
    body.replaceChildren();
    for (const [c, v] of r.new.per_class_f2) {
      const tr = el("tr");
      tr.append(el("th", "", c), el("td", "", f2(v)), el("td", "", current.has(c) ? f2(current.get(c)) : "not a class of it"));
      tr.firstChild.scope = "row";
      body.append(tr);
    }
    const macro = el("tr", "macro");
    macro.append(el("th", "", "macro F2"), el("td", "", f2(r.new.macro_f2)), el("td", "", r.current ? f2(r.current.macro_f2) : "no class in common"));
    macro.firstChild.scope = "row";
    body.append(macro);
    const list = $("teach-examples");
    list.replaceChildren();
    for (const x of r.examples.slice(0, EXAMPLES)) {
      const li = el("li", "tile");
      const img = el("img");
      img.src = "/api/labels/crop/" + encodeURIComponent(x.image);
      img.alt = "Held-out crop " + x.image;
      img.width = 112;
      img.height = 112;
      img.loading = "lazy";
      const dl = el("dl", "facts");
      for (const [k, v] of [["truth", x.truth], ["new", x.new], ["current", x.current]]) {
        dl.append(el("dt", "", k), el("dd", "", v.length ? v.join(", ") : "none"));
      }
      li.append(img, dl);
      list.append(li);
    }
  }

  async function drawBundles() {
    let b;
    try {
      b = await window.stylecamGetJson("/api/bundles");
    } catch (e) {
      $("teach-store").textContent = "The bundle store cannot be read: " + e.message;
      return;
    }
    const list = $("teach-bundles");
    list.replaceChildren();
    $("teach-switch").disabled = !b.managed;
    $("teach-rollback").disabled = !b.managed || !b.previous;
    if (!b.managed) {
      $("teach-store").textContent = b.error + ". Fix: " + b.fix;
      $("teach-store").className = "problem";
      return;
    }
    $("teach-store").className = "";
    $("teach-store").textContent = "Store " + b.store + ": current " + (b.current || "none") + ", previous " + (b.previous || "none") + ".";
    for (const e of b.bundles) {
      const role = e.current ? " (current)" : e.previous ? " (previous: Roll back returns to it)" : "";
      list.append(el("li", e.error ? "problem" : "", e.id + " — " + (e.model || "does not load: " + e.error) + role));
    }
  }

  async function refresh() {
    try {
      drawRun(await window.stylecamGetJson("/api/teach"));
    } catch (e) {
      $("teach-state").textContent = "The training state cannot be read: " + e.message;
    }
  }

  function afterSwitch(r, what) {
    say(what + " " + r.model + " (" + r.current + "). " + r.reload, false);
    drawBundles();
  }

  function setup() {
    $("teach-start").addEventListener("click", async () => {
      const r = await post("/api/teach/start", {}, "Training did not start");
      if (r) say("Training run " + r.started + " started.", false);
      refresh();
    });
    $("teach-stop").addEventListener("click", async () => {
      const r = await post("/api/teach/stop", {}, "Stop");
      if (r) say("Stopping run " + r.stopping + "…", false);
      refresh();
    });
    $("teach-switch").addEventListener("click", async () => {
      const run = $("teach-switch").dataset.run;
      say("Installing the new bundle…", false);
      const r = await post("/api/bundles/switch", { run }, "Switch refused");
      if (r) afterSwitch(r, "Switched to");
    });
    $("teach-rollback").addEventListener("click", async () => {
      say("Rolling back…", false);
      const r = await post("/api/bundles/rollback", {}, "Rollback refused");
      if (r) afterSwitch(r, "Rolled back to");
    });
  }

  const views = (window.stylecamViews = window.stylecamViews || {});
  views.teach = {
    async tick(status, entered) {
      if (entered) {
        shown = null;
        drawBundles();
      }
      $("teach-model").textContent = status.model || "";
      await refresh();
    },
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
})();
