// Calls to the JSON API, with the operator's key when one is saved. The key lives in
// this browser's localStorage only and is sent to this origin only.

const STORAGE = 'eventtracker.apiKey';

export function getKey() {
  try {
    return localStorage.getItem(STORAGE) || '';
  } catch {
    return ''; // storage disabled: run without a key
  }
}

export function setKey(key) {
  if (key) localStorage.setItem(STORAGE, key);
  else localStorage.removeItem(STORAGE);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** GET `path` with the non-empty `params` as its query; resolves to the JSON body. */
export async function get(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const headers = { Accept: 'application/json' };
  const key = getKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let res;
  try {
    res = await fetch(url, { headers, cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'The server cannot be reached; the next refresh retries');
  }
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, describe(res.status, body));
  return body;
}

function describe(status, body) {
  switch (status) {
    case 401:
      return getKey()
        ? 'The server does not accept this API key'
        : 'The server needs an API key: enter one with the read role under "API key"';
    case 403:
      return 'This API key lacks the read role';
    case 429:
      return 'Rate limited; the next refresh retries';
    default:
      return body?.message || `The server answered ${status}`;
  }
}

/** A user id as one path segment. */
export const userPath = (id, rest) => `/v1/users/${encodeURIComponent(id)}${rest}`;
