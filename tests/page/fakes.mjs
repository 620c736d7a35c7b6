// Stand-ins for what the page's modules are given: storage, timers, the service.

/** localStorage's getItem and setItem over a Map. */
export function memoryStorage() {
  const items = new Map();
  return {items, getItem: (key) => items.get(key) ?? null, setItem: (key, value) => items.set(key, String(value))};
}

/** A setTimeout that only records: `run()` fires what is due, in order. */
export function manualTimers() {
  const pending = [];
  const later = (run, ms) => pending.push({run, ms});
  later.pending = pending;
  later.delays = () => pending.map((timer) => timer.ms);
  later.run = () => pending.splice(0).forEach((timer) => timer.run());
  return later;
}

/** A promise, and the functions that settle it. */
export function deferred() {
  let resolve, reject;
  const promise = new Promise((yes, no) => [resolve, reject] = [yes, no]);
  return {promise, resolve, reject};
}

/** Lets every promise that can settle now settle (a few rounds of the microtask queue). */
export const settle = () => new Promise((resolve) => setImmediate(resolve));

/**
 * The service, as the page's `api` sees it: each call is recorded as {path, body, answer} and waits
 * until the test answers it (`answer.resolve(value)`, `answer.reject(error)`), or answers at once
 * from `auto(path, body)` when that returns something other than undefined.
 */
export function fakeService(auto = () => undefined) {
  const calls = [];
  const api = (path, body) => {
    const answer = deferred();
    calls.push({path, body, answer});
    const now = auto(path, body);
    if (now instanceof Error) answer.reject(now);
    else if (now !== undefined) answer.resolve(now);
    return answer.promise;
  };
  api.calls = calls;
  api.paths = () => calls.map((call) => call.path);
  return api;
}

/** `n` queue items, ids `${prefix}0`, `${prefix}1`, ..., scored by model `version`. */
export const items = (n, prefix = "s", version = 1) =>
  Array.from({length: n}, (_, i) => ({id: `${prefix}${i}`, model_version: version, predicted: "a"}));
