// @ts-check
// Drawing the page from what it is given: the item, the model's guess, the counts, the history and
// the learning curve. The DOM is touched only when a function is called.

const MIN_STREAM = 10; // random draws the stream estimate must rest on before it is drawn

/**
 * The project as GET /project gives it (the fields the page reads).
 * @typedef {object} Project
 * @property {string[]} classes
 * @property {Record<string, string>} keys class -> key
 * @property {number[] | null} [image_shape] height, width: features are the pixels
 * @property {string[] | null} [feature_names]
 */
/** @typedef {import("./queue.js").Item} Item */

/** @param {string} id */
export const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Partial<HTMLElementTagNameMap[K]>} [props]
 * @param {(Node | string)[]} children
 */
export function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

/**
 * What the stopping rule says, as GET /stats gives it under `stopping` (the fields the page reads).
 * @typedef {object} Stopping
 * @property {boolean} stable
 * @property {number | null} kappa the mean kappa of the last pairs of versions compared
 * @property {number[]} kappas those pairs' kappas
 * @property {number | null} since_version
 * @property {boolean} paused the queue serves nothing (pause_when_stable)
 */

/**
 * The line under the header (offline) and the text shown in place of an item when there is none.
 * @param {{online: boolean, offline: string, annotator: string, empty: boolean, showing: boolean,
 *   paused?: boolean}} state offline: why the service is taken as unreachable; paused: the queue is
 */
export function renderState({online, offline, annotator, empty, showing, paused = false}) {
  const text = $("state");
  const connection = $("connection");
  connection.hidden = online;
  connection.textContent = online ? "" : `${offline}: labels are kept here and sent when it is back`;
  text.classList.toggle("offline", !online);
  text.hidden = showing;
  if (showing) return;
  if (!annotator) text.textContent = "Type your name above and press Enter to start.";
  else if (!online) text.textContent = "The service is unreachable. Your labels are kept in this page and sent when it comes back.";
  else if (empty && paused) {
    text.textContent = "The queue is paused: the model has stabilised, so more labels are unlikely to change it.";
  } else if (empty) text.textContent = "Nothing left to label: stream more data or lower the threshold.";
  else text.textContent = "Loading…";
}

/**
 * The class buttons, one per class, with its key.
 * @param {Project} project
 * @param {(label: string, event: MouseEvent) => void} choose
 * @returns {Map<string, HTMLButtonElement>} class -> button
 */
export function renderChoices(project, choose) {
  const buttons = new Map();
  for (const label of project.classes) {
    const key = project.keys[label];
    const button = el("button", {type: "button", ariaLabel: `Label ${label}${key ? ` (key ${key})` : ""}`},
      label, ...(key ? [el("kbd", {textContent: key})] : []));
    button.addEventListener("click", (event) => choose(label, event));
    buttons.set(label, button);
  }
  $("choices").replaceChildren(...buttons.values());
  return buttons;
}

/**
 * The item shown (none: hidden), with the decision it had when it is being changed.
 * @param {import("./queue.js").Shown | null} current
 * @param {{project: Project, buttons: Map<string, HTMLButtonElement>, imageOrigins: Set<string>}} page
 */
export function renderItem(current, {project, buttons, imageOrigins}) {
  const article = $("item");
  article.hidden = !current;
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
  $("view").replaceChildren(view(item, project, imageOrigins));
  for (const [label, button] of buttons) {
    button.classList.toggle("guess", label === item.predicted);
    button.classList.toggle("previous", Boolean(previous) && label === previous?.label);
  }
  /** @type {HTMLButtonElement} */ ($("accept")).disabled = item.predicted === null;
  renderProbabilities(item);
}

/** @param {Item} item @param {Project} project @param {Set<string>} imageOrigins @returns {Element} */
function view(item, project, imageOrigins) {
  const shape = project.image_shape;
  if (shape && item.features) return pixels(item.features, shape[0], shape[1]);
  const image = item.meta && (item.meta.image || item.meta.image_url);
  if (typeof image === "string" && /^(data:image\/|https?:\/\/)/i.test(image)) {
    const origin = imageOrigin(image);
    if (origin === "data:" || origin === location.origin || (origin !== null && imageOrigins.has(origin))) {
      return el("img", {src: image, alt: `item ${item.id}`});
    }
    // Never requested: the browser of each annotator would tell that origin who labels what, and when.
    const notice = el("p", {className: "blocked", role: "note", textContent: `Image not shown: its origin `
      + `${origin ?? "(not a valid URL)"} is not allowed (image_origins in the project).`});
    return el("div", {}, notice, data(item, project));
  }
  return data(item, project);
}

/** @param {string} url @returns {string | null} */
function imageOrigin(url) {
  if (/^data:/i.test(url)) return "data:";
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}

/** @param {Item} item @param {Project} project */
function data(item, project) {
  if (item.text !== null && item.text !== undefined) return el("pre", {className: "text", textContent: item.text});
  const features = item.features ?? [];
  const names = project.feature_names || features.map((_, i) => `feature ${i + 1}`);
  const rows = features.map((value, i) =>
    el("tr", {}, el("th", {scope: "row", textContent: names[i]}), el("td", {textContent: format(value)})));
  return el("table", {}, el("tbody", {}, ...rows));
}

/** @param {number[]} values @param {number} height @param {number} width */
function pixels(values, height, width) {
  const canvas = el("canvas", {width, height, role: "img", ariaLabel: "the item as an image"});
  const context = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
  const image = context.createImageData(width, height);
  const top = Math.max(...values) || 1;
  values.forEach((value, i) => {
    const grey = 255 - Math.round((255 * Math.max(0, value)) / top);
    image.data.set([grey, grey, grey, 255], i * 4);
  });
  context.putImageData(image, 0, 0);
  return canvas;
}

const format = (/** @type {number} */ value) => (Number.isInteger(value) ? String(value) : value.toPrecision(4));

/** The model's guess: the top classes, why the item was chosen, its id and metadata. @param {Item} item */
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

/**
 * The last decisions, newest first; clicking one changes it.
 * @param {import("./queue.js").Decision[]} history oldest first
 * @param {(decision: import("./queue.js").Decision) => void} change
 */
export function renderHistory(history, change) {
  $("history").replaceChildren(...history.slice().reverse().map((decision) => {
    const shown = decision.label === null ? el("span", {className: "skipped", textContent: "skipped"})
      : el("span", {className: "label", textContent: decision.label});
    const button = el("button", {type: "button", title: "Change this decision"}, `${decision.id} → `, shown);
    button.addEventListener("click", () => change(decision));
    return el("li", {}, button);
  }));
}

/**
 * @param {{session: number, waiting: number, stats: {labeled: number, unlabeled: number} | null}} counts
 *   session: labels made here (skips are not); waiting: labels in the outbox
 */
export function renderCounts({session, waiting, stats}) {
  $("session-count").textContent = String(session);
  $("outbox-count").textContent = String(waiting);
  if (stats) {
    $("labeled-count").textContent = String(stats.labeled);
    $("queue-size").textContent = String(stats.unlabeled);
  }
}

/** The model version serving the queue. @param {number} version @param {boolean} fresh it just changed */
export function renderBadge(version, fresh) {
  const badge = $("model-badge");
  if (fresh) {
    badge.classList.add("fresh");
    setTimeout(() => badge.classList.remove("fresh"), 1500);
  }
  badge.textContent = `model v${version}`;
}

/** The last training's error, as /stats reports it (null: none). @param {string | null} message */
export function renderTrainingError(message) {
  const error = $("training-error");
  error.hidden = !message;
  error.textContent = message ? `Last training failed: ${message}` : "";
}

/**
 * The sentence the page shows once the model has stabilised ("": not yet).
 * @param {Stopping | null | undefined} stopping
 */
export function stoppingSentence(stopping) {
  if (!stopping?.stable || stopping.kappa === null) return "";
  const models = stopping.kappas.length + 1;
  return `The model has stabilised: more labels are unlikely to change it (κ = ${stopping.kappa.toFixed(3)} `
    + `between the last ${models} models compared, since v${stopping.since_version}).`
    + (stopping.paused ? " The queue is paused." : "");
}

/** What the stopping rule says, under the progress. @param {Stopping | null | undefined} stopping */
export function renderStopping(stopping) {
  const note = $("stopping");
  note.textContent = stoppingSentence(stopping);
  note.hidden = !note.textContent;
}

/** An error of the page, shown until dismissed or replaced by the next. @param {string} message */
export function showError(message) {
  $("page-error-text").textContent = message;
  $("page-error").hidden = false;
}

export function dismissError() {
  $("page-error").hidden = true;
  $("page-error-text").textContent = "";
}

/**
 * The learning curve: held-out accuracy when there is a held-out set, and the stream estimate once
 * it rests on enough draws, against the number of labels; a dashed mark where a drift took over.
 * @param {{n_labels: number, version: number, drift?: boolean, holdout_accuracy?: number,
 *   stream_accuracy?: number, stream_samples?: number}[] | null | undefined} curve
 */
export function renderCurve(curve) {
  const svg = $("curve");
  /** @typedef {"holdout_accuracy" | "stream_accuracy"} Key */
  const trusted = (/** @type {NonNullable<typeof curve>[number]} */ p, /** @type {Key} */ key) =>
    p[key] !== undefined && (key !== "stream_accuracy" || (p.stream_samples ?? 0) >= MIN_STREAM);
  const points = (curve || []).filter((p) => trusted(p, "holdout_accuracy") || trusted(p, "stream_accuracy"));
  if (!points.length) {
    svg.innerHTML = '<text x="150" y="78" text-anchor="middle">the curve starts with the first model</text>';
    return;
  }
  /** @type {Key[]} */
  const keys = ["holdout_accuracy", "stream_accuracy"];
  const xs = points.map((p) => p.n_labels);
  const ys = points.flatMap((p) => keys.filter((k) => trusted(p, k)).map((k) => Number(p[k])));
  const [x0, x1] = [Math.min(...xs), Math.max(...xs, Math.min(...xs) + 1)];
  const y0 = Math.max(0, Math.floor(Math.min(...ys) * 10) / 10);
  const x = (/** @type {number} */ v) => 30 + ((v - x0) / (x1 - x0)) * 260;
  const y = (/** @type {number} */ v) => 135 - ((v - y0) / (1 - y0 || 1)) * 125;
  const line = (/** @type {Key} */ key) => points.filter((p) => trusted(p, key))
    .map((p) => `${x(p.n_labels).toFixed(1)},${y(Number(p[key])).toFixed(1)}`).join(" ");
  const drifts = points.filter((p) => p.drift).map((p) => `<line class="drift" x1="${x(p.n_labels).toFixed(1)}"
    y1="10" x2="${x(p.n_labels).toFixed(1)}" y2="135"><title>drift detected (version ${p.version})</title></line>`);
  svg.innerHTML = `${drifts.join("")}
    <line class="axis" x1="30" y1="135" x2="290" y2="135"/><line class="axis" x1="30" y1="10" x2="30" y2="135"/>
    <text x="26" y="14" text-anchor="end">1.0</text><text x="26" y="138" text-anchor="end">${y0.toFixed(1)}</text>
    <text x="30" y="148">${x0} labels</text><text x="290" y="148" text-anchor="end">${x1}</text>
    <polyline class="holdout" points="${line("holdout_accuracy")}"/>
    <polyline class="stream" points="${line("stream_accuracy")}"/>`;
}
