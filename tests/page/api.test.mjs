// Calls to the service (src/alstream/service/static/api.js): the token, errors.
import assert from "node:assert/strict";
import {test} from "node:test";

import {createApi, HttpError} from "../../src/alstream/service/static/api.js";

/** A fetch that records its calls and answers `status` with `body` (JSON). */
function fakeFetch(status = 200, body = {}) {
  const calls = [];
  const fetch = async (path, options) => {
    calls.push({path, options});
    return new Response(JSON.stringify(body), {status, headers: {"Content-Type": "application/json"}});
  };
  return {fetch, calls};
}

test("GET sends the token; POST sends JSON; the answer is the JSON body", async () => {
  const {fetch, calls} = fakeFetch(200, {ok: 1});
  const api = createApi({token: () => "als_1", fetch});
  assert.deepEqual(await api("/stats"), {ok: 1});
  await api("/labels", [{id: "x"}]);
  assert.equal(calls[0].options.headers.Authorization, "Bearer als_1");
  assert.equal(calls[0].options.method, undefined);
  assert.equal(calls[1].options.method, "POST");
  assert.equal(calls[1].options.headers["Content-Type"], "application/json");
  assert.equal(calls[1].options.body, '[{"id":"x"}]');
  const tokenless = fakeFetch();
  await createApi({token: () => "", fetch: tokenless.fetch})("/project");
  assert.deepEqual(tokenless.calls[0].options.headers, {});
});

test("an answer that is not 2xx is an HttpError with the service's detail; 401 asks for a token", async () => {
  const asked = [];
  for (const [status, detail, message] of [[422, [{msg: "bad"}], '[{"msg":"bad"}]'], [401, "no token", "no token"]]) {
    const api = createApi({token: () => "", fetch: fakeFetch(status, {detail}).fetch, unauthorized: (m) => asked.push(m)});
    await assert.rejects(api("/labels", []), (error) => error instanceof HttpError && error.status === status
      && error.message === message);
  }
  assert.deepEqual(asked, ["no token"]);
});
