// The queue (src/alstream/service/static/queue.js): prefetch, decisions, undo, a new model's items.
import assert from "node:assert/strict";
import {test} from "node:test";

import {Outbox} from "../../src/alstream/service/static/outbox.js";
import {DEPTH, HISTORY, Queue, REFILL_BELOW} from "../../src/alstream/service/static/queue.js";
import {fakeService, items, manualTimers, memoryStorage, settle} from "./fakes.mjs";

/** A queue on a fake service: GET /queue answers from `pool` (taken in order), the rest with {}. */
function queue({pool = items(40), answer = true} = {}) {
  const service = fakeService((path) => {
    if (!answer) return undefined;
    if (!path.startsWith("/queue?")) return {};
    return pool.splice(0, Number(new URLSearchParams(path.split("?")[1]).get("n")));
  });
  const sent = [];
  const outbox = new Outbox({send: async (labels) => sent.push(...labels), storage: memoryStorage(),
    later: manualTimers()});
  const shown = [];
  const q = new Queue({api: service, outbox, shown: () => shown.push(q.current?.item.id ?? null)});
  return {q, service, outbox, sent, shown, queued: () => service.paths().filter((p) => p.startsWith("/queue?"))};
}

const shownId = (q) => q.current?.item.id;

test("the first items come at once, with the ones already held (a reload), then only new ones", async () => {
  const {q, queued} = queue();
  q.switchTo("ann b");
  await settle();
  assert.equal(shownId(q), "s0");
  assert.equal(q.buffer.length, DEPTH - 1);
  assert.deepEqual(queued(), ["/queue?n=6&annotator=ann%20b"]);
  q.decide("a");
  q.decide("a");
  q.decide("a"); // two held: fewer than REFILL_BELOW
  assert.deepEqual(queued(), ["/queue?n=6&annotator=ann%20b", "/queue?n=4&annotator=ann%20b&fresh=true"]);
});

test("the next items are fetched before they are needed: labeling never waits for the service", async () => {
  const {q, service, queued} = queue({answer: false});
  q.switchTo("ann");
  service.calls[0].answer.resolve(items(DEPTH));
  await settle();
  assert.equal(shownId(q), "s0");
  const asked = queued().length;
  while (q.buffer.length >= REFILL_BELOW) assert.ok(q.decide("a"));
  assert.equal(queued().length, asked + 1, "more asked for once fewer than REFILL_BELOW are held");
  assert.ok(q.buffer.length > 0, "and still some held meanwhile");
  assert.match(queued().at(-1), /^\/queue\?n=\d+&annotator=ann&fresh=true$/);
  const left = q.buffer.length;
  service.calls.at(-1).answer.resolve(items(DEPTH - left, "t"));
  await settle();
  assert.equal(q.buffer.length, DEPTH);
  assert.equal(q.buffer.at(-1).id, `t${DEPTH - left - 1}`);
});

test("only one fetch at a time, and none of an item already held, shown or decided", async () => {
  const {q, service, queued} = queue({answer: false});
  q.switchTo("ann");
  q.refill();
  q.refill();
  assert.equal(queued().length, 1);
  service.calls[0].answer.resolve(items(3));
  await settle();
  q.decide("a"); // s0
  service.calls.at(-1).answer.resolve([...items(3), ...items(2, "n")]); // s0..s2 again, and two new
  await settle();
  assert.deepEqual([shownId(q), ...q.buffer.map((item) => item.id)], ["s1", "s2", "n0", "n1"]);
});

test("a failed fetch, or an empty queue, is not asked again at once: the next poll asks", async () => {
  for (const outcome of ["fails", "is empty"]) {
    const {q, service, queued} = queue({answer: false});
    q.switchTo("ann");
    if (outcome === "fails") service.calls[0].answer.reject(new TypeError("Failed to fetch"));
    else service.calls[0].answer.resolve([]);
    await settle();
    await settle();
    assert.equal(queued().length, 1, outcome);
    assert.equal(q.current, null);
    q.served(1); // the poll
    assert.equal(queued().length, 2, outcome);
  }
});

test("each decision goes to the outbox, in the annotator's name; a skip is a skip", async () => {
  const {q, sent} = queue();
  q.switchTo("ann");
  await settle();
  q.decide("b");
  q.decide(null);
  await settle();
  assert.deepEqual(sent, [{id: "s0", label: "b", annotator: "ann"}, {id: "s1", skipped: true, annotator: "ann"}]);
  assert.deepEqual([...q.decided], [["s0", "b"], ["s1", null]]);
  assert.equal(shownId(q), "s2");
});

test("nothing is decided without an item shown", () => {
  const {q, outbox} = queue();
  assert.equal(q.decide("a"), undefined);
  assert.equal(outbox.length, 0);
});

test("undo shows the last item again, as a change, and withdraws its label if not sent yet", async () => {
  const {q, outbox, service} = queue();
  q.switchTo("ann");
  await settle();
  outbox.send = () => new Promise(() => {}); // the service answers no more: labels wait
  q.decide("a"); // s0: in flight
  q.decide("b"); // s1: waiting
  assert.equal(shownId(q), "s2");
  q.undo();
  assert.equal(shownId(q), "s1");
  assert.equal(q.current.previous.label, "b");
  assert.equal(q.buffer[0].id, "s2"); // back at the head, shown next
  assert.deepEqual(outbox.labels.map((l) => l.id), ["s0"]); // s1 withdrawn; s0 is in flight
  q.decide("c");
  assert.deepEqual(outbox.labels.map((l) => [l.id, l.label]), [["s0", "a"], ["s1", "c"]]);
  q.undo(q.history[0]); // an older one, as a click in the history does: s0 was sent, the new label replaces it
  assert.equal(shownId(q), "s0");
  q.decide("d");
  assert.deepEqual(outbox.labels.map((l) => [l.id, l.label]), [["s0", "a"], ["s1", "c"], ["s0", "d"]]);
  assert.equal(shownId(q), "s2");
  assert.ok(service.paths().every((path) => path.startsWith("/queue?")));
});

test("undo with nothing decided does nothing; the history keeps the last ten", async () => {
  const {q} = queue();
  q.switchTo("ann");
  await settle();
  q.undo();
  assert.equal(shownId(q), "s0");
  for (let i = 0; i < HISTORY + 2; i++) {
    q.decide("a");
    await settle();
  }
  assert.deepEqual(q.history.map((d) => d.id), items(HISTORY + 2).slice(2).map((item) => item.id));
});

test("a newer model: the items prefetched under the old one go back for newly scored ones", async () => {
  const {q, service} = queue({answer: false});
  q.switchTo("ann");
  service.calls[0].answer.resolve(items(DEPTH));
  await settle();
  q.served(1); // the same model: nothing to do
  assert.equal(service.calls.length, 1);
  q.served(2);
  assert.deepEqual(service.calls[1].body, {annotator: "ann", ids: ["s1", "s2", "s3", "s4", "s5"]});
  assert.equal(service.calls[1].path, "/queue/release");
  service.calls[1].answer.resolve({});
  await settle();
  assert.equal(service.calls[2].path, "/queue?n=6&annotator=ann&fresh=true");
  service.calls[2].answer.resolve([{id: "s0", model_version: 2}, ...items(3, "v", 2)]);
  await settle();
  assert.equal(shownId(q), "s0"); // the item shown stays
  assert.deepEqual(q.buffer.map((item) => item.id), ["v0", "v1", "v2"]);
});

test("another annotator: the items held for the last one go back, and the new one's come", async () => {
  const {q, service, queued} = queue();
  q.switchTo("ann");
  await settle();
  const held = [...q.buffer.map((item) => item.id), shownId(q)];
  q.switchTo("bob");
  const release = service.calls.find((call) => call.path === "/queue/release");
  assert.deepEqual(release.body, {annotator: "ann", ids: held});
  assert.equal(q.current, null);
  await settle();
  assert.equal(queued().filter((path) => path.includes("annotator=bob"))[0], "/queue?n=6&annotator=bob");
  assert.ok(shownId(q));
});
