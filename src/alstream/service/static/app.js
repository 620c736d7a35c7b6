"use strict";
// The labeling page. One item at a time, one key per decision. Items are prefetched so the next
// one shows at once; decisions go to an outbox kept in the browser and sent in order, so none is
// lost while the service is unreachable. Plain JS, no build step, nothing from the internet.

const DEPTH = 6; // items held ahead of the one shown
const REFILL_BELOW = 3; // fetch more when fewer are held
const HISTORY = 10; // decisions listed, and undoable
const STATS_EVERY_MS = 2000;
const RETRY_MAX_MS = 4000;
const MIN_STREAM = 10; // random draws the stream estimate must rest on before it is drawn
const OUTBOX_KEY = "alstream.outbox";
const NAME_KEY = "alstream.annotator";
const TOKEN_KEY = "alstream.token"; // kept for this browser session only
// Origins besides this one that meta.image may come from, as the service names them (image_origins).
const IMAGE_ORIGINS = new Set(
  (document.querySelector("meta[name='alstream-image-origins']")?.content ?? "").split(" ").filter(Boolean));

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

const state = {
  project: null,
  keys: new Map(), // key -> class
  buttons: new Map(), // class -> button
  annotator: "",
  current: null, // {item, previous: decision | undefined}
  buffer: [], // prefetched items, leased to this annotator
  decided: new Map(), // id -> label (null: skipped), this session
  history: [], // the last decisions, oldest first
  outbox: JSON.parse(localStorage.getItem(OUTBOX_KEY) || "[]"),
  sending: 0, // outbox entries in flight (at its head)
  retryMs: 250,
  fetching: false,
  resumed: false, // asked once for the items this annotator already holds
  online: true,
  empty: false,
  modelVersion: undefined, // the newest model version seen
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  tokenWaiters: [], // resolved when a token is entered
  me: null, // the token's identity (GET /me): its name and the names it may label as
  stats: null,
};

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, body) {
  const headers = state.token ? {Authorization: `Bearer ${state.token}`} : {};
  const options = body === undefined ? {headers} : {
    method: "POST", headers: {...headers, "Content-Type": "application/json"}, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  if (!response.ok) {
    const detail = await response.json().then((b) => b.detail, () => response.statusText);
    const error = new HttpError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
    if (response.status === 401 || response.status === 403) askForToken(error.message);
    throw error;
  }
  return response.json();
}

// --- the token: from a link (#token=...), or typed in; kept for the browser session --------------

function askForToken(reason) {
  state.token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  $("token-reason").textContent = `This alstream needs an access token (${reason}).`;
  const form = $("token-form");
  if (form.hidden) {
    form.hidden = false;
    $("token").focus();
  }
}

function useToken(token) {
  state.token = token.trim();
  sessionStorage.setItem(TOKEN_KEY, state.token);
  $("token-form").hidden = true;
  state.tokenWaiters.splice(0).forEach((resolve) => resolve());
  if (state.me) loadIdentity().catch(failed); // another token: perhaps another name
  flush();
  refill();
}

// --- who labels: the token's name, or one of the names an admin allowed it (an admin: any) -------

const mayActAs = (name) => !state.me || state.me.any_name || state.me.annotators.includes(name);

async function loadIdentity(choose = true) {
  state.me = await api("/me");
  const input = $("annotator");
  const names = state.me.any_name ? [] : state.me.annotators;
  $("annotators").replaceChildren(...names.map((name) => el("option", {value: name})));
  input.readOnly = names.length === 1; // one name: nothing to choose
  input.title = state.me.any_name ? "An admin token may label in any name"
    : `This token labels as ${names.join(" or ")}`;
  if (!choose) return;
  if (state.annotator && !mayActAs(state.annotator)) state.annotator = ""; // its items are not ours to release
  if (!state.annotator && !state.me.any_name) setAnnotator(state.me.name);
}

const tokenEntered = () => new Promise((resolve) => state.tokenWaiters.push(resolve));

const queuePath = (n, fresh) =>
  `/queue?n=${n}&annotator=${encodeURIComponent(state.annotator)}${fresh ? "&fresh=true" : ""}`;

// --- the queue ---------------------------------------------------------------------------------

function held() {
  const ids = new Set(state.buffer.map((item) => item.id));
  if (state.current) ids.add(state.current.item.id);
  for (const label of state.outbox) ids.add(label.id);
  for (const id of state.decided.keys()) ids.add(id);
  return ids;
}

async function refill() {
  const want = DEPTH - state.buffer.length;
  if (state.fetching || !state.annotator || want <= 0) return;
  state.fetching = true;
  try {
    // First the items this annotator already holds (a reload), then only new ones.
    const items = await api(queuePath(want, state.resumed));
    state.resumed = true;
    const skip = held();
    state.buffer.push(...items.filter((item) => !skip.has(item.id)));
    state.empty = items.length === 0;
    showVersion(Math.max(0, ...items.map((item) => item.model_version)) || null);
    setOnline(true);
  } catch (error) {
    failed(error);
  } finally {
    state.fetching = false;
  }
  if (!state.current) advance();
  else renderState();
  if (state.online && !state.empty && state.buffer.length < REFILL_BELOW) refill();
}

function advance() {
  const next = state.buffer.shift();
  state.current = next ? {item: next} : null;
  renderItem();
  if (state.buffer.length < REFILL_BELOW) refill();
}

async function takeNewModel() {
  // Items prefetched under the old model go back; the newly scored queue replaces them.
  if (state.fetching) return; // the next poll tries again
  state.fetching = true;
  const old = state.buffer.map((item) => item.id);
  try {
    if (old.length) await api("/queue/release", {annotator: state.annotator, ids: old});
    const items = await api(queuePath(DEPTH, true));
    const skip = new Set([...state.decided.keys(), ...state.outbox.map((l) => l.id)]);
    if (state.current) skip.add(state.current.item.id);
    state.buffer = items.filter((item) => !skip.has(item.id));
    showVersion(Math.max(0, ...items.map((item) => item.model_version)) || null);
  } catch (error) {
    failed(error);
  } finally {
    state.fetching = false;
  }
  if (!state.current) advance();
}

// --- decisions ---------------------------------------------------------------------------------

function decide(label, event) {
  const current = state.current;
  if (!current || !state.annotator) return;
  const id = current.item.id;
  const decision = {id, item: current.item, label};
  enqueue(label === null ? {id, skipped: true, annotator: state.annotator}
    : {id, label, annotator: state.annotator});
  state.decided.set(id, label);
  state.history.push(decision);
  if (state.history.length > HISTORY) state.history.shift();
  if (document.activeElement instanceof HTMLButtonElement) document.activeElement.blur();
  advance();
  const start = event ? event.timeStamp : performance.now();
  requestAnimationFrame(() => performance.measure("next-item", {start, end: performance.now()}));
  renderHistory();
  renderCounts();
}

function accept(reject, event) {
  const item = state.current && state.current.item;
  if (!item || item.predicted === null) return;
  const classes = state.project.classes;
  if (!reject) return decide(item.predicted, event);
  if (classes.length === 2) decide(classes.find((c) => c !== item.predicted), event);
}

function undo(decision = state.history.at(-1)) {
  if (!decision) return;
  state.history.splice(state.history.indexOf(decision), 1);
  // An unsent decision is simply withdrawn; a sent one is replaced by the next (latest wins).
  const at = state.outbox.findIndex((l, i) => i >= state.sending && l.id === decision.id);
  if (at >= 0) {
    state.outbox.splice(at, 1);
    saveOutbox();
  }
  if (state.current) state.buffer.unshift(state.current.item);
  state.current = {item: decision.item, previous: decision};
  renderItem();
  renderHistory();
  renderCounts();
}

// --- the outbox: every decision reaches the service, in order, exactly as made -------------------

function saveOutbox() {
  localStorage.setItem(OUTBOX_KEY, JSON.stringify(state.outbox));
}

function enqueue(label) {
  state.outbox.push(label);
  saveOutbox();
  flush();
}

async function flush() {
  if (state.sending || !state.outbox.length) return;
  const batch = state.outbox.slice(0, 100);
  state.sending = batch.length;
  let retry = false;
  try {
    await api("/labels", batch);
    state.outbox.splice(0, batch.length);
    state.retryMs = 250;
    setOnline(true);
  } catch (error) {
    const keep = [401, 403, 408, 429]; // no or wrong token, or busy: kept until it can go
    if (error instanceof HttpError && error.status < 500 && !keep.includes(error.status)) {
      state.outbox.splice(0, batch.length); // refused for good: say why, never resend
      showError(`The service refused ${batch.length} label(s): ${error.message}`);
    } else {
      retry = true;
      failed(error);
    }
  } finally {
    state.sending = 0;
    saveOutbox();
    renderCounts();
  }
  if (retry) {
    setTimeout(flush, state.retryMs);
    state.retryMs = Math.min(RETRY_MAX_MS, state.retryMs * 2);
  } else if (state.outbox.length) {
    flush();
  }
}

// --- stats: counts, model version, learning curve ------------------------------------------------

async function poll() {
  try {
    const stats = await api("/stats");
    state.stats = stats;
    setOnline(true);
    showVersion(stats.model_version);
    // Items prefetched under an older model go back for newly scored ones (at most once a poll).
    if (state.buffer.some((item) => item.model_version < stats.model_version)) takeNewModel();
    const error = $("training-error");
    error.hidden = !stats.last_training_error;
    error.textContent = stats.last_training_error ? `Last training failed: ${stats.last_training_error}` : "";
    renderCurve(stats.learning_curve);
    renderCounts();
    if (!state.current || state.buffer.length < REFILL_BELOW) refill();
  } catch (error) {
    failed(error);
  }
  if (state.outbox.length && !state.sending) flush();
  setTimeout(poll, STATS_EVERY_MS);
}

function showVersion(version) {
  if (version === null || version === undefined || version <= (state.modelVersion ?? -1)) return;
  const badge = $("model-badge");
  if (state.modelVersion !== undefined) {
    badge.classList.add("fresh");
    setTimeout(() => badge.classList.remove("fresh"), 1500);
  }
  state.modelVersion = version;
  badge.textContent = `model v${version}`;
}

// --- drawing -----------------------------------------------------------------------------------

function setOnline(online) {
  if (state.online === online) return;
  state.online = online;
  renderState();
  renderCounts();
}

function failed(error) {
  // Unreachable, or failing (5xx): say so. A missing token is asked for instead (askForToken).
  if (!(error instanceof HttpError) || error.status >= 500) setOnline(false);
}

function showError(message) {
  const error = $("training-error");
  error.hidden = false;
  error.textContent = message;
}

function renderState() {
  const text = $("state");
  const connection = $("connection");
  connection.hidden = state.online;
  connection.textContent = state.online ? "" : "Service unreachable: labels are kept here and sent when it is back";
  text.classList.toggle("offline", !state.online);
  if (state.current) {
    text.hidden = true;
    return;
  }
  text.hidden = false;
  if (!state.annotator) text.textContent = "Type your name above and press Enter to start.";
  else if (!state.online) text.textContent = "The service is unreachable. Your labels are kept in this page and sent when it comes back.";
  else if (state.empty) text.textContent = "Nothing left to label: stream more data or lower the threshold.";
  else text.textContent = "Loading…";
}

function renderItem() {
  const current = state.current;
  const article = $("item");
  article.hidden = !current;
  renderState();
  if (!current) {
    article.dataset.id = "";
    return;
  }
  const {item, previous} = current;
  article.dataset.id = item.id;
  const relabel = $("relabel");
  relabel.hidden = !previous;
  relabel.textContent = previous
    ? `Changing your decision (was: ${previous.label === null ? "skipped" : previous.label})` : "";
  $("view").replaceChildren(view(item));
  for (const [label, button] of state.buttons) {
    button.classList.toggle("guess", label === item.predicted);
    button.classList.toggle("previous", Boolean(previous) && label === previous.label);
  }
  $("accept").disabled = item.predicted === null;
  renderProbabilities(item);
}

function view(item) {
  const shape = state.project.image_shape;
  if (shape && item.features) return pixels(item.features, shape[0], shape[1]);
  const image = item.meta && (item.meta.image || item.meta.image_url);
  if (typeof image === "string" && /^(data:image\/|https?:\/\/)/i.test(image)) {
    const origin = imageOrigin(image);
    if (origin === "data:" || origin === location.origin || IMAGE_ORIGINS.has(origin)) {
      return el("img", {src: image, alt: `item ${item.id}`});
    }
    // Never requested: the browser of each annotator would tell that origin who labels what, and when.
    const notice = el("p", {className: "blocked", role: "note", textContent: `Image not shown: its origin `
      + `${origin ?? "(not a valid URL)"} is not allowed (image_origins in the project).`});
    return el("div", {}, notice, data(item));
  }
  return data(item);
}

function imageOrigin(url) {
  if (/^data:/i.test(url)) return "data:";
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}

function data(item) {
  if (item.text !== null && item.text !== undefined) return el("pre", {className: "text", textContent: item.text});
  const names = state.project.feature_names || item.features.map((_, i) => `feature ${i + 1}`);
  const rows = item.features.map((value, i) =>
    el("tr", {}, el("th", {scope: "row", textContent: names[i]}), el("td", {textContent: format(value)})));
  return el("table", {}, el("tbody", {}, ...rows));
}

function pixels(values, height, width) {
  const canvas = el("canvas", {width, height, role: "img", ariaLabel: "the item as an image"});
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  const top = Math.max(...values) || 1;
  values.forEach((value, i) => {
    const grey = 255 - Math.round((255 * Math.max(0, value)) / top);
    image.data.set([grey, grey, grey, 255], i * 4);
  });
  context.putImageData(image, 0, 0);
  return canvas;
}

const format = (value) => (Number.isInteger(value) ? String(value) : value.toPrecision(4));

function renderProbabilities(item) {
  const top = Object.entries(item.probabilities).sort((a, b) => b[1] - a[1]).slice(0, 5);
  $("probabilities").replaceChildren(...top.map(([label, p]) => {
    const bar = el("span");
    bar.style.width = `${(100 * p).toFixed(1)}%`;
    return el("li", {}, el("span", {textContent: label}), el("span", {className: "bar"}, bar),
      el("span", {className: "value", textContent: `${(100 * p).toFixed(0)}%`}));
  }));
  $("why").textContent = item.reason === "cold start"
    ? "Cold start: too few labels for a model yet, so items come at random."
    : `Chosen for ${item.reason === "random" ? "an unbiased accuracy estimate (random)"
      : `${item.strategy} uncertainty, score ${item.score.toFixed(3)}`} · model v${item.model_version}`;
  $("meta").textContent = JSON.stringify({id: item.id, meta: item.meta}, null, 2);
}

function renderHistory() {
  $("history").replaceChildren(...state.history.slice().reverse().map((decision) => {
    const shown = decision.label === null ? el("span", {className: "skipped", textContent: "skipped"})
      : el("span", {className: "label", textContent: decision.label});
    const button = el("button", {type: "button", title: "Change this decision"}, `${decision.id} → `, shown);
    button.addEventListener("click", () => undo(decision));
    return el("li", {}, button);
  }));
}

function renderCounts() {
  $("session-count").textContent = [...state.decided.values()].filter((l) => l !== null).length;
  $("outbox-count").textContent = state.outbox.length;
  if (state.stats) {
    $("labeled-count").textContent = state.stats.labeled;
    $("queue-size").textContent = state.stats.unlabeled;
  }
}

function renderCurve(curve) {
  // Held-out accuracy when there is a held-out set; the stream estimate once it rests on enough draws.
  const svg = $("curve");
  const trusted = (p, key) =>
    p[key] !== undefined && (key !== "stream_accuracy" || p.stream_samples >= MIN_STREAM);
  const points = (curve || []).filter((p) => trusted(p, "holdout_accuracy") || trusted(p, "stream_accuracy"));
  if (!points.length) {
    svg.innerHTML = '<text x="150" y="78" text-anchor="middle">the curve starts with the first model</text>';
    return;
  }
  const xs = points.map((p) => p.n_labels);
  const ys = points.flatMap((p) => ["holdout_accuracy", "stream_accuracy"].filter((k) => trusted(p, k))
    .map((k) => p[k]));
  const [x0, x1] = [Math.min(...xs), Math.max(...xs, Math.min(...xs) + 1)];
  const y0 = Math.max(0, Math.floor(Math.min(...ys) * 10) / 10);
  const x = (v) => 30 + ((v - x0) / (x1 - x0)) * 260;
  const y = (v) => 135 - ((v - y0) / (1 - y0 || 1)) * 125;
  const line = (key) => points.filter((p) => trusted(p, key))
    .map((p) => `${x(p.n_labels).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
  // a drift was detected before this version: a dashed mark where it took over
  const drifts = points.filter((p) => p.drift).map((p) => `<line class="drift" x1="${x(p.n_labels).toFixed(1)}"
    y1="10" x2="${x(p.n_labels).toFixed(1)}" y2="135"><title>drift detected (version ${p.version})</title></line>`);
  svg.innerHTML = `${drifts.join("")}
    <line class="axis" x1="30" y1="135" x2="290" y2="135"/><line class="axis" x1="30" y1="10" x2="30" y2="135"/>
    <text x="26" y="14" text-anchor="end">1.0</text><text x="26" y="138" text-anchor="end">${y0.toFixed(1)}</text>
    <text x="30" y="148">${x0} labels</text><text x="290" y="148" text-anchor="end">${x1}</text>
    <polyline class="holdout" points="${line("holdout_accuracy")}"/>
    <polyline class="stream" points="${line("stream_accuracy")}"/>`;
}

// --- keys, the annotator, start ------------------------------------------------------------------

function onKey(event) {
  if (event.target.closest("input, textarea, select") || event.altKey || event.metaKey) return;
  const onButton = event.target instanceof HTMLButtonElement;
  if (event.key === "Backspace" || (event.ctrlKey && event.key.toLowerCase() === "z")) {
    event.preventDefault();
    undo();
  } else if (event.ctrlKey || ((event.key === "Enter" || event.key === " ") && onButton)) {
    // a focused button keeps its own Enter and Space
  } else if (event.key === "Enter") {
    event.preventDefault();
    accept(event.shiftKey, event);
  } else if (event.key === " ") {
    event.preventDefault();
    decide(null, event);
  } else if (state.keys.has(event.key)) {
    event.preventDefault();
    decide(state.keys.get(event.key), event);
  }
}

function setAnnotator(name) {
  name = name.trim();
  const input = $("annotator");
  input.setCustomValidity("");
  if (!name || name === state.annotator) return;
  if (!mayActAs(name)) {
    input.value = state.annotator;
    input.setCustomValidity(`This token labels only as ${state.me.annotators.join(" or ")}`);
    input.reportValidity();
    return;
  }
  const previous = state.annotator;
  const mine = state.buffer.map((item) => item.id).concat(state.current ? [state.current.item.id] : []);
  if (previous && mine.length) api("/queue/release", {annotator: previous, ids: mine}).catch(() => {});
  Object.assign(state, {annotator: name, buffer: [], current: null, resumed: false, empty: false});
  localStorage.setItem(NAME_KEY, name);
  $("annotator").value = name;
  renderItem();
  refill();
}

async function start() {
  const input = $("annotator");
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      setAnnotator(input.value);
      input.blur();
    }
  });
  input.addEventListener("change", () => setAnnotator(input.value));
  document.addEventListener("keydown", onKey);
  $("accept").addEventListener("click", (event) => accept(false, event));
  $("skip").addEventListener("click", (event) => decide(null, event));
  $("undo").addEventListener("click", () => undo());
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    useToken($("token").value);
  });
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromLink) {
    useToken(fromLink);
    history.replaceState(null, "", location.pathname + location.search); // out of sight and history
  }
  for (;;) {
    try {
      state.project = await api("/project");
      await loadIdentity(false); // the name is chosen below, once the page is built
      break;
    } catch (error) {
      if (error instanceof HttpError && (error.status === 401 || error.status === 403)) await tokenEntered();
      else {
        failed(error);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }
  for (const label of state.project.classes) {
    const key = state.project.keys[label];
    if (key !== undefined) state.keys.set(key, label);
    const button = el("button", {type: "button", ariaLabel: `Label ${label}${key ? ` (key ${key})` : ""}`},
      label, ...(key ? [el("kbd", {textContent: key})] : []));
    button.addEventListener("click", (event) => decide(label, event));
    state.buttons.set(label, button);
  }
  $("choices").replaceChildren(...state.buttons.values());
  const asked = [new URLSearchParams(location.search).get("annotator"), localStorage.getItem(NAME_KEY)];
  const name = asked.find((n) => n && mayActAs(n)) || (state.me.any_name ? "" : state.me.name);
  if (name) setAnnotator(name);
  else {
    renderState();
    input.focus();
  }
  flush();
  poll();
}

start();
