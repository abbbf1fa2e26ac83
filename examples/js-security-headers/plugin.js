// A Weir plugin in JavaScript: CORS for allowed origins (answering preflight
// requests itself) and security headers on every response.
//
// Config (the plugin's JSON file):
//
//   {"allow_origins": ["https://app.example.com"],
//    "allow_methods": ["GET", "POST"], "allow_headers": ["content-type", "authorization"],
//    "max_age": 600, "security_headers": true}

import { log, level } from './weir-log.js';

let settings = {
  allowOrigins: [],
  anyOrigin: false,
  allowMethods: ['GET', 'HEAD', 'POST'],
  allowHeaders: ['content-type', 'authorization'],
  maxAge: 600,
  securityHeaders: true,
};

const SECURITY_HEADERS = [
  ['x-content-type-options', 'nosniff'],
  ['x-frame-options', 'DENY'],
  ['referrer-policy', 'no-referrer'],
];

// One object for every `continue`, rather than a new one per call.
const CONTINUE = { tag: 'continue' };

function allowed(origin) {
  return origin !== undefined && (settings.anyOrigin || settings.allowOrigins.includes(origin));
}

export const handler = {
  init(config) {
    let parsed;
    try {
      parsed = JSON.parse(config || '{}');
    } catch (e) {
      throw `invalid config: ${e.message}`;
    }
    const known = ['allow_origins', 'allow_methods', 'allow_headers', 'max_age', 'security_headers'];
    for (const key of Object.keys(parsed)) {
      if (!known.includes(key)) throw `invalid config: unknown field \`${key}\``;
    }
    if (!Array.isArray(parsed.allow_origins)) throw 'invalid config: `allow_origins` (a list) is required';
    settings = {
      allowOrigins: parsed.allow_origins,
      anyOrigin: parsed.allow_origins.includes('*'),
      allowMethods: (parsed.allow_methods ?? settings.allowMethods).map((m) => m.toUpperCase()),
      allowHeaders: (parsed.allow_headers ?? settings.allowHeaders).map((h) => h.toLowerCase()),
      maxAge: parsed.max_age ?? settings.maxAge,
      securityHeaders: parsed.security_headers ?? true,
    };
    // Both hooks are used.
    return { onRequest: true, onResponse: true };
  },

  // Each call into the host has a cost (a few microseconds under
  // ComponentizeJS, much less under `weir build-js`), so the hooks make as
  // few as they can: the method first (most requests stop there), and one
  // `headers()` instead of a `header()` per name.
  onRequest(req) {
    const preflight = req.method() === 'OPTIONS' && req.header('access-control-request-method') !== undefined;
    if (!preflight) return CONTINUE;
    const origin = req.header('origin');
    // Preflight: answered here, never forwarded.
    const headers = [['vary', 'Origin']];
    if (allowed(origin)) {
      headers.push(
        ['access-control-allow-origin', origin],
        ['access-control-allow-methods', settings.allowMethods.join(', ')],
        ['access-control-allow-headers', settings.allowHeaders.join(', ')],
        ['access-control-max-age', String(settings.maxAge)],
      );
    } else {
      log(level.info, `refused a preflight from origin ${origin}`);
    }
    return { tag: 'respond', val: { status: 204, headers, body: new Uint8Array() } };
  },

  // All edits go to the host in one `setHeaders` call, which replaces the
  // named headers: `vary` keeps the values it had. Both runtimes interpret
  // JavaScript (no JIT), so the code is written plainly: indexed loops and
  // no Set, destructuring or closures on this path.
  onResponse(req, resp) {
    const origin = req.header('origin');
    const cors = allowed(origin);
    if (!cors && !settings.securityHeaders) return CONTINUE;
    const current = resp.headers();
    const edits = [];
    let vary;
    let missing = settings.securityHeaders ? SECURITY_HEADERS.length : 0;
    const absent = [true, true, true];
    for (let i = 0; i < current.length; i++) {
      const name = current[i][0];
      if (name === 'vary') {
        // RFC 9110 section 5.3: the lines of a list field join with ", ".
        vary = vary === undefined ? current[i][1] : `${vary}, ${current[i][1]}`;
      } else if (missing > 0) {
        for (let j = 0; j < SECURITY_HEADERS.length; j++) {
          if (absent[j] && name === SECURITY_HEADERS[j][0]) {
            absent[j] = false;
            missing--;
          }
        }
      }
    }
    if (cors) {
      edits.push(['access-control-allow-origin', origin]);
      edits.push(['vary', vary === undefined ? 'Origin' : `${vary}, Origin`]);
    }
    if (settings.securityHeaders) {
      for (let j = 0; j < SECURITY_HEADERS.length; j++) {
        if (absent[j]) edits.push(SECURITY_HEADERS[j]);
      }
    }
    if (edits.length > 0) resp.setHeaders(edits);
    return CONTINUE;
  },
};
