// @ts-check
// What an annotator labels: the item shown, a few prefetched behind it (leased to them, so the next
// one shows at once), the decisions made (into the outbox) and the last few, which can be undone.

export const DEPTH = 6; // items held ahead of the one shown
export const REFILL_BELOW = 3; // fetch more when fewer are held
export const HISTORY = 10; // decisions kept, and undoable

/**
 * An item of GET /queue (the fields the page reads).
 * @typedef {object} Item
 * @property {string} id
 * @property {number} model_version
 * @property {string | null} predicted
 * @property {Record<string, number>} probabilities
 * @property {string} reason
 * @property {string} strategy
 * @property {number} score
 * @property {number[] | null} [features]
 * @property {string | null} [text]
 * @property {Record<string, any> | null} [meta]
 */
/** @typedef {{id: string, item: Item, label: string | null}} Decision label null: skipped */
/** @typedef {{item: Item, previous?: Decision}} Shown previous: the decision being changed */

const newest = (/** @type {Item[]} */ items) => Math.max(0, ...items.map((item) => item.model_version)) || null;

export class Queue {
  /**
   * @param {object} options
   * @param {import("./api.js").Api} options.api
   * @param {Pick<import("./outbox.js").Outbox, "push" | "withdraw" | "labels">} options.outbox
   * @param {() => void} [options.shown] the item shown changed (or none is)
   * @param {() => void} [options.fetched] items came, or none did, and the one shown is the same
   * @param {(version: number | null) => void} [options.version] the newest model version of the items
   * @param {() => void} [options.reached] the service answered
   * @param {(error: unknown) => void} [options.failed] it did not; the next poll tries again
   */
  constructor({api, outbox, shown = () => {}, fetched = () => {}, version = () => {}, reached = () => {},
    failed = () => {}}) {
    this.api = api;
    this.outbox = outbox;
    this.on = {shown, fetched, version, reached, failed};
    this.annotator = "";
    /** @type {Shown | null} */
    this.current = null;
    /** @type {Item[]} prefetched, leased to this annotator */
    this.buffer = [];
    /** @type {Map<string, string | null>} id -> label (null: skipped), this session */
    this.decided = new Map();
    /** @type {Decision[]} the last decisions, oldest first */
    this.history = [];
    this.fetching = false;
    this.resumed = false; // asked once for the items this annotator already holds
    this.empty = false; // the last fetch found nothing left to label
  }

  /** Ids this page has decided, or shows: never to be shown again as new. */
  taken() {
    const ids = new Set([...this.decided.keys(), ...this.outbox.labels.map((label) => label.id)]);
    if (this.current) ids.add(this.current.item.id);
    return ids;
  }

  /** @param {number} n @param {boolean} fresh only items not leased to this annotator yet */
  path(n, fresh) {
    return `/queue?n=${n}&annotator=${encodeURIComponent(this.annotator)}${fresh ? "&fresh=true" : ""}`;
  }

  /** Fetch items up to DEPTH (none while a fetch is under way), and keep on while they come. */
  async refill() {
    const want = DEPTH - this.buffer.length;
    if (this.fetching || !this.annotator || want <= 0) return;
    this.fetching = true;
    let items;
    try {
      // First the items this annotator already holds (a reload), then only new ones.
      items = /** @type {Item[]} */ (await this.api(this.path(want, this.resumed)));
    } catch (error) {
      this.on.failed(error);
    } finally {
      this.fetching = false;
    }
    if (!items) return this.on.fetched(); // the next poll tries again
    this.resumed = true;
    const skip = new Set([...this.taken(), ...this.buffer.map((item) => item.id)]);
    this.buffer.push(...items.filter((item) => !skip.has(item.id)));
    this.empty = items.length === 0;
    this.on.version(newest(items));
    this.on.reached();
    if (!this.current) this.show(this.buffer.shift());
    else this.on.fetched();
    if (!this.empty && this.buffer.length < REFILL_BELOW) this.refill();
  }

  /** @param {Item | undefined} item @param {Decision} [previous] the decision being changed */
  show(item, previous) {
    this.current = item ? {item, previous} : null;
    this.on.shown();
  }

  /** The next item, and more fetched when few are left. */
  advance() {
    this.show(this.buffer.shift());
    if (this.buffer.length < REFILL_BELOW) this.refill();
  }

  /**
   * A poll saw that model `version` serves (null: none yet): items prefetched under an older one go
   * back for newly scored ones, and more are fetched when few are held.
   * @param {number | null} version
   */
  served(version) {
    if (version !== null && this.buffer.some((item) => item.model_version < version)) this.takeNewModel();
    if (!this.current || this.buffer.length < REFILL_BELOW) this.refill();
  }

  async takeNewModel() {
    if (this.fetching) return; // the next poll tries again
    this.fetching = true;
    const old = this.buffer.map((item) => item.id);
    try {
      if (old.length) await this.api("/queue/release", {annotator: this.annotator, ids: old});
      const items = /** @type {Item[]} */ (await this.api(this.path(DEPTH, true)));
      const skip = this.taken();
      this.buffer = items.filter((item) => !skip.has(item.id));
      this.on.version(newest(items));
    } catch (error) {
      this.on.failed(error);
    } finally {
      this.fetching = false;
    }
    if (!this.current) this.advance();
  }

  /**
   * Decide the item shown (label null: skip it), and show the next.
   * @param {string | null} label
   * @returns {Decision | undefined} undefined: nothing shown, or no annotator
   */
  decide(label) {
    if (!this.current || !this.annotator) return undefined;
    const {item} = this.current;
    const decision = {id: item.id, item, label};
    this.outbox.push(label === null ? {id: item.id, skipped: true, annotator: this.annotator}
      : {id: item.id, label, annotator: this.annotator});
    this.decided.set(item.id, label);
    this.history.push(decision);
    if (this.history.length > HISTORY) this.history.shift();
    this.advance();
    return decision;
  }

  /** Show a decided item again, to be decided anew (by default the last one decided). */
  undo(decision = this.history.at(-1)) {
    if (!decision) return;
    this.history.splice(this.history.indexOf(decision), 1);
    // An unsent decision is simply withdrawn; a sent one is replaced by the next (latest wins).
    this.outbox.withdraw(decision.id);
    if (this.current) this.buffer.unshift(this.current.item);
    this.show(decision.item, decision);
  }

  /** Label as `name` from now on: the items held for the previous name go back. */
  switchTo(/** @type {string} */ name) {
    const mine = this.buffer.map((item) => item.id).concat(this.current ? [this.current.item.id] : []);
    if (this.annotator && mine.length) {
      this.api("/queue/release", {annotator: this.annotator, ids: mine}).catch(() => {});
    }
    Object.assign(this, {annotator: name, buffer: [], current: null, resumed: false, empty: false});
    this.on.shown();
    this.refill();
  }
}
