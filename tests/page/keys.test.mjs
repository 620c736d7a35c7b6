// The keys (src/alstream/service/static/keys.js): one key per decision.
import assert from "node:assert/strict";
import {test} from "node:test";

import {classKeys, guessLabel, keyAction} from "../../src/alstream/service/static/keys.js";

const keys = classKeys({classes: ["cat", "dog", "long name"], keys: {cat: "c", dog: "d"}});

test("class keys label; Enter accepts, Shift+Enter rejects; Space skips; Backspace and Ctrl+Z undo", () => {
  assert.deepEqual([...keys], [["c", "cat"], ["d", "dog"]]);
  assert.deepEqual(keyAction({key: "d"}, keys), {do: "label", label: "dog"});
  assert.deepEqual(keyAction({key: "Enter"}, keys), {do: "accept"});
  assert.deepEqual(keyAction({key: "Enter", shiftKey: true}, keys), {do: "reject"});
  assert.deepEqual(keyAction({key: " "}, keys), {do: "skip"});
  assert.deepEqual(keyAction({key: "Backspace"}, keys), {do: "undo"});
  assert.deepEqual(keyAction({key: "Z", ctrlKey: true}, keys), {do: "undo"});
  assert.equal(keyAction({key: "x"}, keys), null);
});

test("typing in a field, a focused button's Enter and Space, and other shortcuts are left alone", () => {
  assert.equal(keyAction({key: "c", inField: true}, keys), null);
  assert.equal(keyAction({key: "Backspace", inField: true}, keys), null);
  assert.equal(keyAction({key: "Enter", onButton: true}, keys), null);
  assert.equal(keyAction({key: " ", onButton: true}, keys), null);
  assert.deepEqual(keyAction({key: "c", onButton: true}, keys), {do: "label", label: "cat"});
  assert.equal(keyAction({key: "c", ctrlKey: true}, keys), null);
  assert.equal(keyAction({key: "c", altKey: true}, keys), null);
  assert.equal(keyAction({key: "c", metaKey: true}, keys), null);
});

test("accepting gives the guess; rejecting, the other class of two (of more: nothing)", () => {
  assert.equal(guessLabel({predicted: "ham"}, ["spam", "ham"], false), "ham");
  assert.equal(guessLabel({predicted: "ham"}, ["spam", "ham"], true), "spam");
  assert.equal(guessLabel({predicted: "cat"}, ["cat", "dog", "owl"], true), undefined);
  assert.equal(guessLabel({predicted: null}, ["spam", "ham"], false), undefined);
  assert.equal(guessLabel(undefined, ["spam", "ham"], false), undefined);
});
