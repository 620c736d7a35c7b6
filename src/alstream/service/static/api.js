// @ts-check
// Calls to the service: JSON in and out, the token sent.

/** An answer that is not 2xx: its status and the service's `detail`. */
export class HttpError extends Error {
  /** @param {number} status @param {string} message */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** @typedef {(path: string, body?: unknown) => Promise<any>} Api GET `path`, or POST `body` as JSON. */

/**
 * @param {object} options
 * @param {() => string} options.token the token to send ("": none)
 * @param {(message: string) => void} [options.unauthorized] on 401 and 403: the token is missing or wrong
 * @param {typeof fetch} [options.fetch]
 * @returns {Api}
 */
export function createApi({token, unauthorized = () => {}, fetch = globalThis.fetch}) {
  return async (path, body) => {
    /** @type {Record<string, string>} */
    const headers = token() ? {Authorization: `Bearer ${token()}`} : {};
    const options = body === undefined ? {headers} : {
      method: "POST", headers: {...headers, "Content-Type": "application/json"}, body: JSON.stringify(body),
    };
    const response = await fetch(path, options);
    if (!response.ok) {
      const detail = await response.json().then((b) => b.detail, () => response.statusText);
      const error = new HttpError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
      if (response.status === 401 || response.status === 403) unauthorized(error.message);
      throw error;
    }
    return response.json();
  };
}
