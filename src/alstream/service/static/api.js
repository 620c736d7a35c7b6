// @ts-check
// Calls to the service: JSON in and out, the token sent, every call bounded in time.

export const TIMEOUT_MS = 10_000;

/** An answer that is not 2xx: its status and the service's `detail`. */
export class HttpError extends Error {
  /** @param {number} status @param {string} message */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** No answer within the timeout: the service is taken as unreachable, and the call may be retried. */
export class TimeoutError extends Error {}

/** @typedef {(path: string, body?: unknown) => Promise<any>} Api GET `path`, or POST `body` as JSON. */

/**
 * @param {object} options
 * @param {() => string} options.token the token to send ("": none)
 * @param {(message: string) => void} [options.unauthorized] on 401 and 403: the token is missing or wrong
 * @param {typeof fetch} [options.fetch]
 * @param {number} [options.timeoutMs] for the whole call, answer and body
 * @returns {Api}
 */
export function createApi({token, unauthorized = () => {}, fetch = globalThis.fetch, timeoutMs = TIMEOUT_MS}) {
  return async (path, body) => {
    /** @type {Record<string, string>} */
    const headers = token() ? {Authorization: `Bearer ${token()}`} : {};
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), timeoutMs);
    const {signal} = timeout;
    const options = body === undefined ? {headers, signal} : {
      method: "POST", headers: {...headers, "Content-Type": "application/json"}, body: JSON.stringify(body), signal,
    };
    try {
      const response = await fetch(path, options);
      if (!response.ok) {
        const detail = await response.json().then((b) => b.detail, () => response.statusText);
        const error = new HttpError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
        if (response.status === 401 || response.status === 403) unauthorized(error.message);
        throw error;
      }
      return await response.json();
    } catch (error) {
      if (!signal.aborted || error instanceof HttpError) throw error;
      const call = `${body === undefined ? "GET" : "POST"} ${path.split("?")[0]}`;
      throw new TimeoutError(`The service did not answer within ${timeoutMs / 1000} s (${call})`);
    } finally {
      clearTimeout(timer);
    }
  };
}
