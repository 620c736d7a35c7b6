// @ts-check
// The labeling page. One item at a time, one key per decision. Items are prefetched so the next one
// shows at once (queue.js); decisions go to an outbox kept in the browser and sent in order, so none
// is lost while the service is unreachable (outbox.js). This module wires them to the service
// (api.js), the keys (keys.js) and the page (render.js). Plain JS modules, no build step, nothing
// from the internet.
import {createApi, HttpError, TimeoutError} from "./api.js";
import {classKeys, guessLabel, keyAction} from "./keys.js";
import {Outbox} from "./outbox.js";
import {Queue} from "./queue.js";
import * as render from "./render.js";

const {$} = render;
const STATS_EVERY_MS = 2000;
const NAME_KEY = "alstream.annotator";
const TOKEN_KEY = "alstream.token"; // kept for this browser session only

/** @typedef {{name: string, any_name: boolean, annotators: string[]}} Me GET /me: who the token is */

const page = {
  /** @type {render.Project} */
  project: {classes: [], keys: {}}, // GET /project's, once it answered
  /** @type {Map<string, string>} key -> class */
  keys: new Map(),
  /** @type {Map<string, HTMLButtonElement>} class -> button */
  buttons: new Map(),
  // Origins besides this one that meta.image may come from, as the service names them (image_origins).
  imageOrigins: new Set(
    /** @type {HTMLMetaElement | null} */ (document.querySelector("meta[name='alstream-image-origins']"))
      ?.content.split(" ").filter(Boolean)),
  online: true,
  offline: "", // why not
  /** @type {number | undefined} the newest model version seen */
  modelVersion: undefined,
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  /** @type {(() => void)[]} resolved when a token is entered */
  tokenWaiters: [],
  /** @type {Me | null} the token's identity: its name and the names it may label as */
  me: null,
  /** @type {{labeled: number, unlabeled: number, stopping?: render.Stopping} | null} the last GET /stats */
  stats: null,
};

const api = createApi({token: () => page.token, unauthorized: askForToken});
const outbox = new Outbox({
  send: (labels) => api("/labels", labels),
  storage: localStorage,
  sent: () => setOnline(true),
  failed,
  refused: (count, reason) => render.showError(`The service refused ${count} label(s): ${reason}`),
  changed: drawCounts,
});
const queue = new Queue({
  api, outbox, shown: drawItem, fetched: drawState, version: showVersion, reached: () => setOnline(true), failed,
});

// --- drawing what the queue, the outbox and the service say --------------------------------------

function drawState() {
  render.renderState({...page, annotator: queue.annotator, empty: queue.empty, showing: Boolean(queue.current),
    paused: Boolean(page.stats?.stopping?.paused)});
}

function drawItem() {
  render.renderItem(queue.current, page);
  drawState();
}

function drawHistory() {
  render.renderHistory(queue.history, undo);
}

function drawCounts() {
  const session = [...queue.decided.values()].filter((label) => label !== null).length;
  render.renderCounts({session, waiting: outbox.length, stats: page.stats});
}

/** @param {number | null | undefined} version */
function showVersion(version) {
  if (version === null || version === undefined || version <= (page.modelVersion ?? -1)) return;
  render.renderBadge(version, page.modelVersion !== undefined);
  page.modelVersion = version;
}

function setOnline(online = true, offline = "") {
  if (page.online === online && page.offline === offline) return;
  Object.assign(page, {online, offline});
  drawState();
  drawCounts();
}

/** Unreachable, slow or failing (5xx): say so. A missing token is asked for instead (askForToken). */
function failed(/** @type {unknown} */ error) {
  if (error instanceof HttpError && error.status < 500) return;
  setOnline(false, error instanceof TimeoutError ? error.message : "Service unreachable");
}

// --- decisions ---------------------------------------------------------------------------------

/** @param {string | null} label null: skip @param {Event} [event] the key or click */
function decide(label, event) {
  if (!queue.decide(label)) return;
  if (document.activeElement instanceof HTMLButtonElement) document.activeElement.blur();
  const start = event ? event.timeStamp : performance.now();
  requestAnimationFrame(() => performance.measure("next-item", {start, end: performance.now()}));
  drawHistory();
  drawCounts();
}

/** Accept the model's guess, or reject it (two classes: the other one). */
function accept(reject = false, /** @type {Event | undefined} */ event = undefined) {
  const label = guessLabel(queue.current?.item, page.project.classes, reject);
  if (label !== undefined) decide(label, event);
}

/** @param {import("./queue.js").Decision} [decision] by default the last */
function undo(decision) {
  queue.undo(decision);
  drawHistory();
  drawCounts();
}

/** @param {KeyboardEvent} event */
function onKey(event) {
  const target = /** @type {Element} */ (event.target);
  const action = keyAction({
    key: event.key, ctrlKey: event.ctrlKey, altKey: event.altKey, metaKey: event.metaKey, shiftKey: event.shiftKey,
    inField: Boolean(target.closest("input, textarea, select")), onButton: target instanceof HTMLButtonElement,
  }, page.keys);
  if (!action) return;
  event.preventDefault();
  if (action.do === "undo") undo();
  else if (action.do === "label") decide(action.label, event);
  else if (action.do === "skip") decide(null, event);
  else accept(action.do === "reject", event);
}

// --- stats: counts, model version, learning curve ------------------------------------------------

async function poll() {
  try {
    const stats = await api("/stats");
    page.stats = stats;
    setOnline(true);
    showVersion(stats.model_version);
    render.renderTrainingError(stats.last_training_error);
    render.renderCurve(stats.learning_curve);
    render.renderStopping(stats.stopping);
    drawCounts();
    drawState();
    queue.served(stats.model_version);
  } catch (error) {
    failed(error);
  }
  if (outbox.length && !outbox.sending) outbox.flush();
  setTimeout(poll, STATS_EVERY_MS);
}

// --- the token: from a link (#token=...), or typed in; kept for the browser session --------------

/** @param {string} reason */
function askForToken(reason) {
  page.token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  $("token-reason").textContent = `This alstream needs an access token (${reason}).`;
  const form = $("token-form");
  if (form.hidden) {
    form.hidden = false;
    $("token").focus();
  }
}

/** @param {string} token */
function useToken(token) {
  page.token = token.trim();
  sessionStorage.setItem(TOKEN_KEY, page.token);
  $("token-form").hidden = true;
  page.tokenWaiters.splice(0).forEach((resolve) => resolve());
  if (page.me) loadIdentity().catch(failed); // another token: perhaps another name
  outbox.flush();
  queue.refill();
}

const tokenEntered = () => new Promise((resolve) => page.tokenWaiters.push(() => resolve(undefined)));

// --- who labels: the token's name, or one of the names an admin allowed it (an admin: any) -------

const mayActAs = (/** @type {string} */ name) => !page.me || page.me.any_name || page.me.annotators.includes(name);

const nameInput = () => /** @type {HTMLInputElement} */ ($("annotator"));

async function loadIdentity(choose = true) {
  const me = page.me = /** @type {Me} */ (await api("/me"));
  const input = nameInput();
  const names = me.any_name ? [] : me.annotators;
  $("annotators").replaceChildren(...names.map((name) => render.el("option", {value: name})));
  input.readOnly = names.length === 1; // one name: nothing to choose
  input.title = me.any_name ? "An admin token may label in any name" : `This token labels as ${names.join(" or ")}`;
  if (!choose) return;
  if (queue.annotator && !mayActAs(queue.annotator)) queue.annotator = ""; // its items are not ours to release
  if (!queue.annotator && !me.any_name) setAnnotator(me.name);
}

/** @param {string} name */
function setAnnotator(name) {
  name = name.trim();
  const input = nameInput();
  input.setCustomValidity("");
  if (!name || name === queue.annotator) return;
  if (!mayActAs(name)) {
    input.value = queue.annotator;
    input.setCustomValidity(`This token labels only as ${page.me?.annotators.join(" or ")}`);
    input.reportValidity();
    return;
  }
  localStorage.setItem(NAME_KEY, name);
  input.value = name;
  queue.switchTo(name);
}

// --- start ---------------------------------------------------------------------------------------

async function start() {
  const input = nameInput();
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
  $("page-error-dismiss").addEventListener("click", render.dismissError);
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    useToken(/** @type {HTMLInputElement} */ ($("token")).value);
  });
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromLink) {
    useToken(fromLink);
    history.replaceState(null, "", location.pathname + location.search); // out of sight and history
  }
  for (;;) {
    try {
      page.project = await api("/project");
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
  page.keys = classKeys(page.project);
  page.buttons = render.renderChoices(page.project, decide);
  const me = /** @type {Me} */ (page.me);
  const asked = [new URLSearchParams(location.search).get("annotator"), localStorage.getItem(NAME_KEY)];
  const name = asked.find((n) => n && mayActAs(n)) || (me.any_name ? "" : me.name);
  if (name) setAnnotator(name);
  else {
    drawState();
    input.focus();
  }
  outbox.flush();
  poll();
}

// The browser tests and the console call these by name.
Object.assign(window, {setAnnotator, renderCurve: render.renderCurve});

start();
