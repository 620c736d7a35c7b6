// Calls to the service (src/alstream/service/static/api.js): the token, errors, the timeout.
import assert from "node:assert/strict";
import {test} from "node:test";

import {createApi, HttpError, TimeoutError} from "../../src/alstream/service/static/api.js";

/** A fetch that records its calls and answers `status` with `body` (JSON). */
function fakeFetch(status = 200, body = {}) {
  const calls = [];
  const fetch = async (path, options) => {
    calls.push({path, options});
    return new Response(JSON.stringify(body), {status, headers: {"Content-Type": "application/json"}});
  };
  return {fetch, calls};
}

/** A fetch that never answers, as a service that hangs; it stops when its signal aborts. */
const hanging = async (path, {signal}) => new Promise((_, reject) =>
  signal.addEventListener("abort", () => reject(signal.reason)));

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

test("a call with no answer within the timeout fails with a TimeoutError that says so", async () => {
  const api = createApi({token: () => "", fetch: hanging, timeoutMs: 30});
  const started = Date.now();
  await assert.rejects(api("/queue?n=6&annotator=ann"), (error) => {
    assert.ok(error instanceof TimeoutError, error);
    assert.equal(error.message, "The service did not answer within 0.03 s (GET /queue)");
    return true;
  });
  assert.ok(Date.now() - started < 2000);
  await assert.rejects(createApi({token: () => "", fetch: hanging, timeoutMs: 30})("/labels", []),
    {name: "Error", message: "The service did not answer within 0.03 s (POST /labels)"});
});

test("the timeout covers the body too: headers that come, and a body that does not", async () => {
  const stalled = async (path, {signal}) => new Response(new ReadableStream({start(controller) {
    signal.addEventListener("abort", () => controller.error(signal.reason));
  }}), {status: 200});
  await assert.rejects(createApi({token: () => "", fetch: stalled, timeoutMs: 30})("/stats"), TimeoutError);
});

test("every call gets a signal, so the browser's own fetch is bounded in time too", async () => {
  const {fetch, calls} = fakeFetch();
  await createApi({token: () => "", fetch})("/stats");
  assert.ok(calls[0].options.signal instanceof AbortSignal);
});

test("an unreachable service is not a timeout: its own error goes on", async () => {
  const refused = async () => { throw new TypeError("fetch failed"); };
  await assert.rejects(createApi({token: () => "", fetch: refused})("/stats"), TypeError);
});
