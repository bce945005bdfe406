// The stst page: every style on your photo, one style in full with its look controls, clips, and a live camera.
// It uses only the server's HTTP API (GET /api/models, POST /api/stylize, POST /api/clips, POST /api/styles,
// WS /api/live).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: [], byName: {}, photo: null, chosen: null, request: 0 };
const THUMB_SIDE = 320;   // thumbnails are stylized from a copy of the photo this big
const THUMB_PARALLEL = 2; // thumbnail requests in flight at once
const LIVE_SIDE = 640;    // camera frames are sent at most this wide
const LIVE_IN_FLIGHT = 2; // frames on their way at once: the server keeps only the newest waiting one

function say(text) {
  $("message").textContent = text;
  $("message").hidden = !text;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A busy server (503) says when to come back: the page says so and tries again then.
async function api(path, body) {
  const send = () => fetch(path, body ? { method: "POST", body } : {});
  let response = await send();
  while (response.status === 503) {
    const seconds = Number(response.headers.get("Retry-After")) || 2;
    say(`busy, retrying in ${seconds} s`);
    await sleep(seconds * 1000);
    response = await send();
    if (response.status !== 503) say("");
  }
  if (!response.ok) {
    let reason = response.statusText;
    try { reason = (await response.json()).error; } catch (_) { /* not JSON */ }
    throw new Error(reason);
  }
  return response;
}

function fillTiers(select, model, preferred) {
  const tiers = state.byName[model].tiers;
  select.replaceChildren(...tiers.map((tier) => new Option(tier, tier)));
  select.value = tiers.includes(preferred) ? preferred : tiers[0];
}

function fillStyles(select) {
  select.replaceChildren(...state.models.map((m) => new Option(m.name.replaceAll("_", " "), m.name)));
}

// Styles mix with those of the same network: the server gives each style's.
function fillMix(model) {
  const own = state.byName[model].network;
  const partners = state.models.filter((m) => m.name !== model && m.network === own);
  const keep = $("mix-style").value;
  $("mix-style").replaceChildren(...partners.map((m) => new Option(m.name.replaceAll("_", " "), m.name)));
  if (partners.some((m) => m.name === keep)) $("mix-style").value = keep;
  $("mix-box").hidden = partners.length === 0;
}

function fastestTier(model) {
  const costs = state.byName[model].macs_per_pixel;
  return Object.keys(costs).reduce((a, b) => (costs[a] <= costs[b] ? a : b));
}

// ---- tabs ----
document.querySelectorAll(".tab").forEach((tab) => tab.addEventListener("click", () => {
  document.querySelectorAll(".tab").forEach((t) => t.setAttribute("aria-selected", String(t === tab)));
  document.querySelectorAll(".panel").forEach((p) => { p.hidden = p.id !== tab.dataset.tab; });
}));

// ---- photo: the grid of every style, then one style in full ----
async function shrunk(file, side) {
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  const scale = Math.min(1, side / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
}

function stylizeForm(image, fields) {
  const form = new FormData();
  form.append("image", image, "photo.jpg");
  Object.entries(fields).forEach(([key, value]) => form.append(key, String(value)));
  return form;
}

function buildGrid() {
  $("grid").replaceChildren(...state.models.map((model) => {
    const card = document.createElement("button");
    card.className = "card";
    card.dataset.model = model.name;
    card.dataset.state = "empty";
    card.setAttribute("aria-pressed", "false");
    const img = document.createElement("img");
    img.className = "thumb";
    img.alt = model.name;
    const name = document.createElement("b");
    name.textContent = model.name.replaceAll("_", " ");
    const title = document.createElement("small");
    title.textContent = model.title;
    card.append(img, name, title);
    card.addEventListener("click", () => choose(model.name));
    return card;
  }));
}

async function fillGrid(file) {
  const thumb = await shrunk(file, THUMB_SIDE);
  const cards = [...$("grid").children];
  cards.forEach((card) => { card.dataset.state = "pending"; });
  const queue = [...cards];
  const worker = async () => {
    for (let card = queue.shift(); card; card = queue.shift()) {
      try {
        const response = await api("/api/stylize", stylizeForm(thumb, { model: card.dataset.model, format: "jpg", tier: "full" }));
        card.querySelector("img").src = URL.createObjectURL(await response.blob());
        card.dataset.state = "done";
      } catch (error) {
        card.dataset.state = "failed";
        say(`${card.dataset.model}: ${error.message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: THUMB_PARALLEL }, worker));
}

function choose(model) {
  state.chosen = model;
  document.querySelectorAll(".card").forEach((c) => c.setAttribute("aria-pressed", String(c.dataset.model === model)));
  $("chosen-name").textContent = model.replaceAll("_", " ");
  $("chosen-title").textContent = state.byName[model].title;
  fillTiers($("tier"), model, $("tier").value || "full");
  fillMix(model);
  renderChosen();
}

async function renderChosen() {
  if (!state.photo || !state.chosen) return;
  const ticket = ++state.request; // a newer request makes this one's answer stale
  $("busy").hidden = false;
  const fields = {
    model: state.chosen, tier: $("tier").value, strength: $("strength").value,
    stroke_scale: $("stroke").value, preserve_colors: $("colors").checked, format: "png",
  };
  try {
    const response = await api("/api/stylize", stylizeForm(state.photo, fields));
    if (ticket !== state.request) return;
    const url = URL.createObjectURL(await response.blob());
    $("after").src = url;
    $("download").href = url;
    $("download").download = `${state.photoName}-${state.chosen}${fields.tier === "full" ? "" : "-" + fields.tier}.png`;
    $("download").hidden = false;
    $("timing").textContent = `${response.headers.get("X-Stst-Seconds")} s on the server`;
    say("");
  } catch (error) {
    if (ticket === state.request) say(error.message);
  } finally {
    if (ticket === state.request) $("busy").hidden = true;
  }
}

// A file's name without its extension.
const stem = (file) => (file.name || "photo").replace(/\.[^.]*$/, "");

// A photo this browser cannot decode (an iPhone's HEIC outside Safari) as the server reads it: a JPEG, upright.
async function decodable(file) {
  const bitmap = await createImageBitmap(file).catch(() => null);
  if (bitmap) {
    bitmap.close();
    return file;
  }
  const form = new FormData();
  form.append("image", file, file.name || "photo");
  const response = await api("/api/photo", form);
  return new File([await response.blob()], `${stem(file)}.jpg`, { type: "image/jpeg" });
}

async function takePhoto(chosen) {
  if (!chosen) return;
  let file;
  try {
    file = await decodable(chosen);
  } catch (error) {
    say(error.message);
    return;
  }
  state.photo = file;
  state.photoName = stem(file);
  $("before").src = URL.createObjectURL(file);
  $("after").removeAttribute("src");
  $("viewer").hidden = false;
  say("");
  choose(state.chosen || state.default);
  await fillGrid(file);
}

let debounce = null;
function later() {
  clearTimeout(debounce);
  debounce = setTimeout(renderChosen, 250);
}

// A box that takes a file dropped on it or chosen through its input.
function dropZone(zone, input, take) {
  input.addEventListener("change", (event) => take(event.target.files[0]));
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    take(event.dataTransfer.files[0]);
  });
}

dropZone($("drop"), $("photo-input"), takePhoto);
$("split").addEventListener("input", (event) => {
  const at = event.target.value;
  $("after").style.clipPath = `inset(0 ${100 - at}% 0 0)`;
  $("compare").style.setProperty("--split", `${at}%`);
});
$("strength").addEventListener("input", (e) => { $("strength-value").textContent = e.target.value; later(); });
$("stroke").addEventListener("input", (e) => { $("stroke-value").textContent = e.target.value; later(); });
$("colors").addEventListener("change", later);
$("mix").addEventListener("input", (e) => { $("mix-value").textContent = e.target.value; });
$("tier").addEventListener("change", later);

// ---- clips: upload, progress from the server, download ----
$("clip-style").addEventListener("change", () => fillTiers($("clip-tier"), $("clip-style").value, "full"));
$("clip-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("clip-input").files[0];
  const form = new FormData();
  form.append("video", file, file.name);
  form.append("model", $("clip-style").value);
  form.append("tier", $("clip-tier").value);
  $("clip-progress").hidden = false;
  $("clip-progress").removeAttribute("value");
  $("clip-status").textContent = "uploading…";
  $("clip-download").hidden = $("clip-video").hidden = true;
  try {
    let job = await (await api("/api/clips", form)).json();
    while (job.state === "queued" || job.state === "running") {
      await sleep(500);
      job = await (await api(`/api/clips/${job.id}`)).json();
      if (job.total) { $("clip-progress").max = job.total; $("clip-progress").value = job.frames; }
      $("clip-status").textContent = `${job.state}: ${job.frames}${job.total ? " of " + job.total : ""} frames`;
    }
    if (job.state !== "done") throw new Error(job.error || job.state);
    $("clip-status").textContent = `done: ${job.frames} frames` + (job.error ? ` (${job.error})` : "");
    const url = `/api/clips/${job.id}/video`;
    $("clip-video").src = url;
    $("clip-download").href = url;
    $("clip-download").download = job.name;
    $("clip-video").hidden = $("clip-download").hidden = false;
  } catch (error) {
    $("clip-status").textContent = "";
    say(error.message);
  }
});

// ---- live: camera frames over a WebSocket, at most LIVE_IN_FLIGHT on their way ----
// Frames on their way: sent, less those answered (a picture or a frame's error) and those the server dropped.
const live = { socket: null, sent: 0, answered: 0, dropped: 0, shown: [], canvas: document.createElement("canvas") };
const inFlight = () => live.sent - live.answered - live.dropped;

function liveSettings() {
  return JSON.stringify({ model: $("live-style").value, tier: $("live-tier").value });
}

function sendFrames() {
  const video = $("camera");
  if (!live.socket || live.socket.readyState !== WebSocket.OPEN || !video.videoWidth) return;
  while (inFlight() < LIVE_IN_FLIGHT) {
    const scale = Math.min(1, LIVE_SIDE / video.videoWidth);
    live.canvas.width = Math.round(video.videoWidth * scale);
    live.canvas.height = Math.round(video.videoHeight * scale);
    live.canvas.getContext("2d").drawImage(video, 0, 0, live.canvas.width, live.canvas.height);
    live.sent += 1;
    live.canvas.toBlob((blob) => live.socket.send(blob), "image/jpeg", 0.85);
  }
}

async function showFrame(data) {
  live.answered += 1;
  sendFrames();
  const bitmap = await createImageBitmap(new Blob([data], { type: "image/jpeg" }));
  const out = $("live-out");
  if (out.width !== bitmap.width || out.height !== bitmap.height) {
    out.width = bitmap.width;
    out.height = bitmap.height;
  }
  out.getContext("2d").drawImage(bitmap, 0, 0);
  const now = performance.now();
  live.shown.push(now);
  while (live.shown.length && live.shown[0] < now - 2000) live.shown.shift();
  if (live.shown.length > 1) {
    const fps = (live.shown.length - 1) / ((now - live.shown[0]) / 1000);
    $("fps").textContent = `${fps.toFixed(1)} frames/s`;
  }
}

$("live-start").addEventListener("click", async () => {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    $("camera").srcObject = stream;
    await $("camera").play();
  } catch (error) {
    say(`camera: ${error.message}`);
    return;
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  live.socket = new WebSocket(`${scheme}://${location.host}/api/live`);
  live.socket.binaryType = "arraybuffer";
  live.socket.addEventListener("open", () => { live.socket.send(liveSettings()); sendFrames(); });
  live.socket.addEventListener("message", (event) => {
    if (typeof event.data !== "string") return showFrame(event.data);
    const note = JSON.parse(event.data);
    if (note.dropped !== undefined) live.dropped = note.dropped;
    if (note.frame) { live.answered += 1; sendFrames(); }
    if (note.error) say(note.error);
    else $("live-ms").textContent = `${note.ms} ms a frame on the server, ${note.dropped} dropped`;
  });
  live.socket.addEventListener("close", () => say("live view closed by the server"));
  $("live-start").disabled = true;
});
$("live-style").addEventListener("change", () => {
  fillTiers($("live-tier"), $("live-style").value, fastestTier($("live-style").value));
  if (live.socket) live.socket.send(liveSettings());
});
$("live-tier").addEventListener("change", () => { if (live.socket) live.socket.send(liveSettings()); });

// ---- a new style: a painting or a mix trained by the server (one at a time), its progress and a preview ----
async function newStyle(painting) {
  if (!painting) return;
  const form = new FormData();
  form.append("painting", painting, painting.name);
  form.append("minutes", $("style-minutes").value);
  await followStyle(form);
}

// A mix of the chosen style and the one picked, at the slider's share, trained for the mix's own budget.
async function newMix() {
  const share = Number($("mix").value);
  const form = new FormData();
  form.append("mix", `${state.chosen}=${1 - share},${$("mix-style").value}=${share}`);
  if ($("mix-minutes").value) form.append("minutes", $("mix-minutes").value);
  await followStyle(form);
}

// What the training said of the painting (a thumbnail comes out blurred), under the progress.
function showNotes(notes) {
  $("style-notes").textContent = notes.join(" ");
  $("style-notes").hidden = notes.length === 0;
}

async function followStyle(form) {
  if (state.photo) form.append("photo", await shrunk(state.photo, 512), "photo.jpg");
  $("style-job").hidden = false;
  $("style-preview").hidden = true;
  showNotes([]);
  $("style-progress").removeAttribute("value");
  $("style-status").textContent = "uploading…";
  try {
    let job = await (await api("/api/styles", form)).json();
    let shown = 0;
    while (job.state === "queued" || job.state === "running") {
      await sleep(1000);
      job = await (await api(`/api/styles/${job.id}`)).json();
      if (job.state === "queued") {
        $("style-status").textContent = `${job.name}: waiting, ${job.place === 1 ? "next" : "number " + job.place} in line`;
        continue;
      }
      $("style-progress").max = job.budget;
      $("style-progress").value = job.seconds;
      showNotes(job.notes);
      const left = Math.max(0, Math.round(job.budget - job.seconds));
      $("style-status").textContent = `${job.name}: learning, ${left} s left (step ${job.iteration})`;
      if (job.preview && job.iteration !== shown) {
        shown = job.iteration;
        const preview = await api(`/api/styles/${job.id}/preview`);
        $("style-preview").src = URL.createObjectURL(await preview.blob());
        $("style-preview").hidden = false;
      }
    }
    if (job.state !== "done") throw new Error(job.error || job.state);
    showNotes(job.notes);
    $("style-progress").value = $("style-progress").max;
    $("style-status").textContent = `${job.name}: done, it is in the grid`;
    await loadModels();
    if (state.photo) {
      choose(job.name);
      await fillGrid(state.photo);
    }
  } catch (error) {
    $("style-status").textContent = "";
    say(error.message);
  }
}

dropZone($("painting-drop"), $("painting-input"), newStyle);
$("mix-make").addEventListener("click", newMix);

// ---- start: the models ----
async function loadModels() {
  const catalog = await (await api("/api/models")).json();
  state.models = catalog.models;
  state.default = catalog.default;
  state.models.forEach((m) => { state.byName[m.name] = m; });
  buildGrid();
  [$("clip-style"), $("live-style")].forEach(fillStyles);
  $("clip-style").value = $("live-style").value = state.default;
  fillTiers($("clip-tier"), state.default, "full");
  fillTiers($("live-tier"), state.default, fastestTier(state.default));
}

(async () => {
  try {
    await loadModels();
    document.body.dataset.ready = "true";
  } catch (error) {
    say(`cannot list the models: ${error.message}`);
  }
})();
