// What the page says of the stopping rule (src/alstream/service/static/render.js), as /stats gives it.
import assert from "node:assert/strict";
import {test} from "node:test";

import {stoppingSentence} from "../../src/alstream/service/static/render.js";

const stable = {stable: true, kappa: 0.99456, kappas: [0.99, 0.995, 0.9987], since_version: 12, paused: false};

test("once stable, the sentence gives the figure, how many models agree and since when", () => {
  assert.equal(stoppingSentence(stable), "The model has stabilised: more labels are unlikely to change it "
    + "(κ = 0.995 between the last 4 models compared, since v12).");
  assert.match(stoppingSentence({...stable, paused: true}), /since v12\)\. The queue is paused\.$/);
});

test("nothing to say before it is stable, or from a service that does not say", () => {
  assert.equal(stoppingSentence({...stable, stable: false, since_version: null}), "");
  assert.equal(stoppingSentence({...stable, kappa: null}), "");
  assert.equal(stoppingSentence(undefined), "");
});
