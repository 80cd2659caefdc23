// HTTP calls to cardiotwin: login, the /api/ JSON routes and the FHIR reads.
//
// The session lives in an HttpOnly cookie the page cannot read; what the page
// holds is the CSRF token from the login answer (or GET /auth/session), sent
// as X-CSRF-Token on every request that changes something. Errors become an
// ApiError whose message is the server's own one-line explanation.

export class ApiError extends Error {
  constructor(status, message, retryAfterS) {
    super(message);
    this.status = status;
    this.retryAfterS = retryAfterS;
  }
}

async function errorFrom(res, what) {
  let msg = `${what}: HTTP ${res.status}`;
  try {
    const body = await res.json();
    if (body && typeof body.message === 'string') msg = body.message;
    else if (body && body.resourceType === 'OperationOutcome' && body.issue && body.issue[0]) {
      msg = body.issue[0].diagnostics || (body.issue[0].details && body.issue[0].details.text) || msg;
    }
  } catch { /* not JSON: keep the status line */ }
  const ra = Number(res.headers.get('Retry-After'));
  return new ApiError(res.status, msg, Number.isFinite(ra) ? ra : undefined);
}

export class Api {
  constructor() {
    this.csrf = null;
    this.session = null;
    this.onUnauthorized = null;
  }

  async call(method, path, { body, what } = {}) {
    const headers = { Accept: 'application/json, application/fhir+json;q=0.9' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && method !== 'HEAD' && this.csrf) headers['X-CSRF-Token'] = this.csrf;
    let res;
    try {
      res = await fetch(path, {
        method, headers, credentials: 'same-origin', cache: 'no-store',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, `${what || path}: server unreachable (${e.message})`);
    }
    if (!res.ok) {
      const err = await errorFrom(res, what || path);
      if (res.status === 401 && this.onUnauthorized && !path.startsWith('/auth/')) this.onUnauthorized(err);
      throw err;
    }
    if (res.status === 204) return null;
    return res.json();
  }

  async login(username, password) {
    const s = await this.call('POST', '/auth/login', { body: { username, password }, what: 'login' });
    this.adopt(s);
    return s;
  }

  async restore() {
    const s = await this.call('GET', '/auth/session', { what: 'session' });
    this.adopt(s);
    return s;
  }

  adopt(s) {
    this.session = s;
    this.csrf = s && typeof s.csrf === 'string' ? s.csrf : null;
  }

  async logout() {
    try { await this.call('POST', '/auth/logout', { what: 'logout' }); } finally { this.adopt(null); }
  }

  sources() { return this.call('GET', '/api/sources', { what: 'sources' }); }

  alerts(patient, limit = 50) {
    return this.call('GET', `/api/alerts?patient=${encodeURIComponent(patient)}&limit=${limit}`, { what: 'alerts' });
  }

  acknowledge(id) {
    return this.call('POST', `/api/alerts/${encodeURIComponent(id)}/acknowledge`, { what: `alert ${id}` });
  }

  report(id) {
    return this.call('GET', `/fhir/DiagnosticReport/${encodeURIComponent(id)}`, { what: `DiagnosticReport ${id}` });
  }

  strip(patient, fromMs, toMs) {
    const q = `patient=${encodeURIComponent(patient)}&from_ms=${Math.round(fromMs)}&to_ms=${Math.round(toMs)}`;
    return this.call('GET', `/api/strip?${q}`, { what: 'event strip' });
  }
}
