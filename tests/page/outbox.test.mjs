// The outbox (src/alstream/service/static/outbox.js): labels kept, sent in order, retried.
import assert from "node:assert/strict";
import {test} from "node:test";

import {HttpError} from "../../src/alstream/service/static/api.js";
import {OUTBOX_KEY, Outbox, RETRY_MAX_MS} from "../../src/alstream/service/static/outbox.js";
import {fakeService, manualTimers, memoryStorage, settle} from "./fakes.mjs";

const label = (id, value = "a") => ({id, label: value, annotator: "ann"});
const stored = (storage) => JSON.parse(storage.getItem(OUTBOX_KEY)).map((l) => l.id);

function outbox({auto, storage = memoryStorage(), ...on} = {}) {
  const service = fakeService(auto);
  const later = manualTimers();
  const box = new Outbox({send: (labels) => service("/labels", labels), storage, later, ...on});
  return {box, service, later, storage};
}

test("labels are sent in order, and none is kept once the service has them", async () => {
  const {box, service, storage} = outbox({auto: () => ({})});
  box.push(label("x"));
  box.push(label("y"));
  box.push(label("z"));
  await settle();
  assert.deepEqual(service.calls.map((call) => call.body.map((l) => l.id)), [["x"], ["y", "z"]]); // y, z waited for x
  assert.equal(box.length, 0);
  assert.deepEqual(stored(storage), []);
});

test("a long outbox goes in batches of 100", async () => {
  const storage = memoryStorage();
  storage.setItem(OUTBOX_KEY, JSON.stringify(Array.from({length: 250}, (_, i) => label(`s${i}`))));
  const {box, service} = outbox({auto: () => ({}), storage});
  await box.flush();
  await settle();
  assert.deepEqual(service.calls.map((call) => call.body.length), [100, 100, 50]);
  assert.equal(service.calls[1].body[0].id, "s100");
});

test("a label is kept while the service is unreachable, and retried later, backing off", async () => {
  const failures = [];
  const {box, service, later, storage} = outbox({failed: (error) => failures.push(error)});
  box.push(label("x"));
  for (let i = 0; i < 6; i++) {
    service.calls.at(-1).answer.reject(new TypeError("Failed to fetch"));
    await settle();
    assert.deepEqual(stored(storage), ["x"]); // in storage all along
    later.run();
  }
  assert.equal(failures.length, 6);
  assert.equal(service.calls.length, 7);
  assert.equal(box.retryMs, RETRY_MAX_MS);
  service.calls.at(-1).answer.resolve({});
  await settle();
  assert.equal(box.length, 0);
  assert.equal(box.retryMs, 250); // reset once a batch went
});

test("the retries wait 250 ms, then twice as long each time, up to 4 s", async () => {
  const {box, later} = outbox({auto: () => new HttpError(503, "unavailable")});
  box.push(label("x"));
  const delays = [];
  for (let i = 0; i < 7; i++) {
    await settle();
    delays.push(...later.delays());
    later.run();
  }
  assert.deepEqual(delays, [250, 500, 1000, 2000, 4000, 4000, 4000]);
});

test("labels survive a reload: a new page's outbox sends what the last one kept", async () => {
  const first = outbox();
  first.box.push(label("x"));
  first.box.push(label("y"));
  first.service.calls[0].answer.reject(new TypeError("Failed to fetch"));
  await settle();
  const {box, service} = outbox({auto: () => ({}), storage: first.storage}); // the page reloaded
  assert.deepEqual(box.labels.map((l) => l.id), ["x", "y"]);
  await box.flush();
  assert.deepEqual(service.calls[0].body.map((l) => l.id), ["x", "y"]);
  assert.deepEqual(stored(first.storage), []);
});

test("a batch refused for good is dropped and said why; a missing token or a busy service keep it", async () => {
  for (const status of [401, 403, 408, 429, 500]) {
    const {box, later} = outbox({auto: () => new HttpError(status, "no")});
    box.push(label("x"));
    await settle();
    assert.equal(box.length, 1, `status ${status}`);
    assert.deepEqual(later.delays(), [250]);
  }
  const refusals = [];
  const {box, later, storage} = outbox({auto: () => new HttpError(422, "no such class"),
    refused: (count, reason) => refusals.push([count, reason])});
  box.push(label("x", "dog"));
  await settle();
  assert.deepEqual(refusals, [[1, "no such class"]]);
  assert.equal(box.length, 0);
  assert.deepEqual(stored(storage), []);
  assert.deepEqual(later.delays(), []); // never resent
});

test("a label can be withdrawn until it is sent, not while it is in flight", async () => {
  const {box, service, storage} = outbox();
  box.push(label("x")); // in flight
  box.push(label("y"));
  box.push(label("z"));
  assert.equal(box.withdraw("x"), false);
  assert.equal(box.withdraw("y"), true);
  assert.deepEqual(stored(storage), ["x", "z"]);
  service.calls[0].answer.resolve({});
  await settle();
  assert.deepEqual(service.calls.map((call) => call.body.map((l) => l.id)), [["x"], ["z"]]);
});
