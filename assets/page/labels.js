// The Labels view (#labels): the collected crops, least sure first, one at
// a time with its classes as numbered checkboxes. Keyboard first: 1-9
// toggle a class, Enter saves and moves on, x or Delete discards (deletes
// the crop), arrows move. Writes go through window.stylecamPost (app.js),
// which adds the page session's anti-forgery token. Data is drawn with
// textContent only.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const PAGE = 60;
  const state = {
    crops: [],     // the page of crops from /api/labels
    taxonomy: [],  // [{id, en}]
    at: 0,         // the current crop's index
    offset: 0,
    matched: 0,
    loading: null,
    active: false,
  };

  const cropUrl = (name) => "/api/labels/crop/" + encodeURIComponent(name);
  const say = (text, bad) => {
    const p = $("label-said");
    p.textContent = text;
    p.className = bad ? "problem" : "";
  };
  const errorText = (e) => e.message + (e.body && e.body.fix ? " Fix: " + e.body.fix : "");

  function query() {
    const q = new URLSearchParams();
    q.set("show", $("labels-show").value);
    if ($("labels-class").value) q.set("class", $("labels-class").value);
    if ($("labels-camera").value) q.set("camera", $("labels-camera").value);
    q.set("offset", String(state.offset));
    q.set("limit", String(PAGE));
    return "/api/labels?" + q.toString();
  }

  function fillSelect(select, values, keep) {
    const was = select.value;
    select.replaceChildren(el("option", "", "any"));
    select.firstChild.value = "";
    for (const v of values) {
      const o = el("option", "", v);
      o.value = v;
      select.append(o);
    }
    select.value = keep && values.includes(was) ? was : "";
  }

  async function load(keepAt) {
    const data = await window.stylecamGetJson(query());
    state.crops = data.crops;
    state.taxonomy = data.taxonomy;
    state.matched = data.matched;
    state.at = keepAt ? Math.min(state.at, Math.max(0, data.crops.length - 1)) : 0;
    drawCounts(data);
    fillSelect($("labels-class"), data.taxonomy.map((c) => c.id), true);
    fillSelect($("labels-camera"), data.cameras, true);
    $("labels-source").textContent = {
      page: "written on this page (taxonomy.json)",
      config: "teach.classes in the config",
      bundle: "the current model's classes",
    }[data.source] || data.source;
    if (document.activeElement !== $("labels-taxonomy")) {
      $("labels-taxonomy").value = data.taxonomy.map((c) => c.id).join("\n");
    }
    $("label-more").hidden = data.offset + data.crops.length >= data.matched;
    drawGrid();
    drawCurrent();
  }

  function drawCounts(data) {
    const counts = Object.entries(data.counts).map(([c, n]) => c + " " + n).join(", ");
    $("labels-counts").textContent =
      data.crops_total + " crops: " + data.labelled + " labelled, " + data.unlabelled + " not yet" +
      (counts ? " (" + counts + ")" : "") + ". Showing " + state.matched + ", least sure first.";
  }

  // The counts after a write, without redrawing the grid.
  async function recount() {
    try {
      drawCounts(await window.stylecamGetJson("/api/labels?show=all&limit=1"));
    } catch {
      // The next load shows them.
    }
  }

  function drawGrid() {
    const grid = $("label-grid");
    grid.replaceChildren();
    state.crops.forEach((c, i) => {
      const li = el("li");
      li.dataset.image = c.image;
      li.dataset.index = String(i);
      if (c.labels) li.classList.add("done");
      const img = el("img");
      img.src = cropUrl(c.image);
      img.alt = "Crop " + (i + 1) + " from " + c.camera;
      img.loading = "lazy";
      img.width = 112;
      img.height = 112;
      li.append(img, el("span", "", c.labels ? c.labels.join(", ") || "none" : c.camera));
      li.addEventListener("click", () => { state.at = i; drawCurrent(); $("label-current").focus(); });
      grid.append(li);
    });
  }

  function current() {
    return state.crops[state.at] || null;
  }

  function drawCurrent() {
    const c = current();
    for (const li of $("label-grid").children) {
      li.setAttribute("aria-current", String(Number(li.dataset.index) === state.at));
    }
    const box = $("label-classes");
    box.replaceChildren(el("legend", "", "Classes of this crop"));
    const img = $("label-current-img");
    if (!c) {
      $("label-current-title").textContent = state.matched ? "No more crops on this page" : "No crop to label";
      img.hidden = true;
      $("label-current").dataset.image = "";
      return;
    }
    $("label-current-title").textContent = (state.offset + state.at + 1) + " of " + state.matched + ": " + c.camera + ", " + c.captured_at;
    $("label-current").dataset.image = c.image;
    img.hidden = false;
    img.src = cropUrl(c.image);
    img.alt = "The crop to label, from camera " + c.camera;
    const on = new Set(c.labels || c.prefill);
    state.taxonomy.forEach((t, i) => {
      const label = el("label");
      const input = el("input");
      input.type = "checkbox";
      input.dataset.class = t.id;
      input.checked = on.has(t.id);
      const p = c.probs[t.id];
      label.append(input, el("kbd", "", i < 9 ? String(i + 1) : ""), el("span", "", t.en || t.id));
      if (p !== undefined) label.append(el("span", "note", " (" + p.toFixed(2) + ")"));
      box.append(label);
    });
    const li = $("label-grid").children[state.at];
    if (li) li.scrollIntoView({ block: "nearest" });
  }

  function chosen() {
    return [...$("label-classes").querySelectorAll("input[type=checkbox]")].filter((i) => i.checked).map((i) => i.dataset.class);
  }

  function move(by) {
    if (!state.crops.length) return;
    state.at = Math.max(0, Math.min(state.crops.length - 1, state.at + by));
    drawCurrent();
  }

  async function save() {
    const c = current();
    if (!c) return;
    const classes = chosen();
    try {
      await window.stylecamPost("/api/labels/save", { image: c.image, classes });
      c.labels = classes;
      const li = $("label-grid").children[state.at];
      if (li) { li.classList.add("done"); li.lastChild.textContent = classes.join(", ") || "none"; }
      say("Saved " + c.image + ": " + (classes.join(", ") || "no class") + ".");
      recount();
      if (state.at + 1 < state.crops.length) move(1);
      else { state.at += 1; drawCurrent(); }
    } catch (e) {
      say("Not saved: " + errorText(e), true);
    }
  }

  async function discard() {
    const c = current();
    if (!c) return;
    try {
      await window.stylecamPost("/api/labels/discard", { image: c.image });
      state.crops.splice(state.at, 1);
      state.matched -= 1;
      say("Discarded " + c.image + ": the crop and its labels are deleted from the box.");
      recount();
      drawGrid();
      state.at = Math.min(state.at, Math.max(0, state.crops.length - 1));
      drawCurrent();
    } catch (e) {
      say("Not discarded: " + errorText(e), true);
    }
  }

  function typing(t) {
    return t && (t.tagName === "TEXTAREA" || t.tagName === "SELECT" || (t.tagName === "INPUT" && t.type !== "checkbox"));
  }

  document.addEventListener("keydown", (e) => {
    if (!state.active || e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    if (e.target.tagName === "BUTTON" && e.key === "Enter") return; // the button's own click
    const k = e.key;
    if (/^[1-9]$/.test(k)) {
      const box = $("label-classes").querySelectorAll("input[type=checkbox]")[Number(k) - 1];
      if (box) { box.checked = !box.checked; e.preventDefault(); }
    } else if (k === "Enter") { e.preventDefault(); save(); }
    else if (k === "x" || k === "Delete") { e.preventDefault(); discard(); }
    else if (k === "ArrowRight" || k === "ArrowDown") { e.preventDefault(); move(1); }
    else if (k === "ArrowLeft" || k === "ArrowUp") { e.preventDefault(); move(-1); }
  });

  function reload(e) {
    state.offset = 0;
    load(false).catch((err) => say("Cannot read the crops: " + err.message, true));
    if (e) e.preventDefault();
  }
  for (const id of ["labels-show", "labels-class", "labels-camera"]) $(id).addEventListener("change", reload);
  $("label-save").addEventListener("click", save);
  $("label-discard").addEventListener("click", discard);
  $("label-next-page").addEventListener("click", () => {
    // Saved crops leave the "unlabelled" list: its next page starts anew.
    if ($("labels-show").value !== "unlabelled") state.offset += PAGE;
    load(false).catch((err) => say("Cannot read the crops: " + err.message, true));
  });

  $("labels-taxonomy-save").addEventListener("click", async () => {
    const classes = $("labels-taxonomy").value.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
    const said = $("labels-taxonomy-said");
    try {
      await window.stylecamPost("/api/labels/taxonomy", { classes });
      said.textContent = "Saved: " + classes.join(", ") + ".";
      said.className = "ok";
      await load(true);
    } catch (e) {
      said.textContent = "Not saved: " + errorText(e);
      said.className = "problem";
    }
  });

  $("labels-upload").addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = $("labels-file").files[0];
    const said = $("labels-upload-said");
    const list = $("labels-upload-problems");
    list.replaceChildren();
    if (!file) return;
    try {
      const text = await file.text();
      const r = await window.stylecamPost("/api/labels/upload?name=" + encodeURIComponent(file.name), text, "text/csv");
      said.textContent = file.name + ": " + r.taken + " rows taken.";
      said.className = "ok";
      await load(true);
    } catch (err) {
      said.textContent = file.name + ": " + errorText(err);
      said.className = "problem";
      for (const p of (err.body && err.body.problems) || []) {
        list.append(el("li", "", p.file + ":" + p.line + ": " + p.problem + ". Fix: " + p.fix));
      }
    }
  });

  window.stylecamViews = window.stylecamViews || {};
  window.stylecamViews.labels = {
    async tick(_status, entered) {
      state.active = true;
      if (entered) {
        state.offset = 0;
        await load(false).catch((err) => say("Cannot read the crops: " + err.message, true));
        $("label-current").focus();
      }
    },
  };
  // Keys act only while the view shows.
  window.addEventListener("hashchange", () => { state.active = location.hash === "#labels"; });
})();
