// @ts-check
// The outbox: every decision reaches the service, in order, exactly as made. It is kept in storage
// (the browser's localStorage), so a reload or a service outage loses none.
import {HttpError} from "./api.js";

export const OUTBOX_KEY = "alstream.outbox";
export const BATCH = 100; // labels per POST /labels
export const RETRY_MIN_MS = 250;
export const RETRY_MAX_MS = 4000;
const KEEP = [401, 403, 408, 429]; // no or wrong token, or busy: kept until it can go

/**
 * A decision as POST /labels takes it.
 * @typedef {{id: string, annotator: string, label?: string, skipped?: true}} Label
 */

export class Outbox {
  /**
   * @param {object} options
   * @param {(labels: Label[]) => Promise<unknown>} options.send
   * @param {Pick<Storage, "getItem" | "setItem">} options.storage
   * @param {(run: () => void, ms: number) => unknown} [options.later] a retry, ms from now
   * @param {() => void} [options.sent] a batch went (the service is reachable)
   * @param {(error: unknown) => void} [options.failed] a batch could not go; it is retried
   * @param {(count: number, reason: string) => void} [options.refused] refused for good: never resent
   * @param {() => void} [options.changed] after each try
   */
  constructor({send, storage, later = setTimeout, sent = () => {}, failed = () => {}, refused = () => {},
    changed = () => {}}) {
    this.send = send;
    this.storage = storage;
    this.later = later;
    this.on = {sent, failed, refused, changed};
    /** @type {Label[]} oldest first */
    this.labels = JSON.parse(storage.getItem(OUTBOX_KEY) || "[]");
    this.sending = 0; // labels in flight, at the head
    this.retryMs = RETRY_MIN_MS;
  }

  get length() {
    return this.labels.length;
  }

  /** @param {Label} label */
  push(label) {
    this.labels.push(label);
    this.save();
    this.flush();
  }

  /** Take back the unsent label for `id`; false when there is none (sent, or in flight). */
  withdraw(/** @type {string} */ id) {
    const at = this.labels.findIndex((label, i) => i >= this.sending && label.id === id);
    if (at < 0) return false;
    this.labels.splice(at, 1);
    this.save();
    return true;
  }

  /** Send the labels, a batch at a time, until none is left or one fails (then retried later). */
  async flush() {
    if (this.sending || !this.labels.length) return;
    const batch = this.labels.slice(0, BATCH);
    this.sending = batch.length;
    let retry = false;
    try {
      await this.send(batch);
      this.labels.splice(0, batch.length);
      this.retryMs = RETRY_MIN_MS;
      this.on.sent();
    } catch (error) {
      if (error instanceof HttpError && error.status < 500 && !KEEP.includes(error.status)) {
        this.labels.splice(0, batch.length); // say why, never resend
        this.on.refused(batch.length, error.message);
      } else {
        retry = true;
        this.on.failed(error);
      }
    } finally {
      this.sending = 0;
      this.save();
      this.on.changed();
    }
    if (retry) {
      this.later(() => this.flush(), this.retryMs);
      this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
    } else if (this.labels.length) {
      this.flush();
    }
  }

  save() {
    this.storage.setItem(OUTBOX_KEY, JSON.stringify(this.labels));
  }
}
