// Test OAuth 2.0 authorization server for the mosquitto-oauth end-to-end tests, built on
// oidc-provider 9 (a certified OpenID Provider). Loopback only, plain http, in-memory state.
//
// Usage: node server.mjs [--port N] [--introspection-delay-ms N] [--keys FILE]
//        node server.mjs --gen-keys FILE      (writes a fresh private JWKS to FILE and exits)
//
// On start it prints exactly one line to stdout, then nothing else (diagnostics go to stderr):
//   IDP_READY {"issuer":"http://127.0.0.1:PORT","port":PORT}
//
// Endpoints (issuer = http://127.0.0.1:PORT):
//   GET  /.well-known/openid-configuration   discovery
//   POST /token                              token endpoint (grant_type=client_credentials)
//   POST /token/introspection                RFC 7662 introspection (opaque tokens, and the JWTs it issued)
//   POST /token/revocation                   RFC 7009 revocation (opaque tokens, and the JWTs it issued)
//   GET  /jwks                               public keys: one RSA (RS256) and one EC P-256 (ES256)
//   GET  /__test/stats                       {"introspections":N,"tokens":N,"jwks":N} (HTTP requests seen)
//   POST /__test/reset                       zero the counters
//   POST /__test/delay?ms=N                  delay answers of introspection and JWKS by N ms (0 = none)
//   POST /__test/sign                        {"token": JWT}: the JSON body's claims signed RS256 with
//                                            this server's key, exactly as given (forgeries for tests)
//
// Token requests (client_credentials) accept, besides the standard parameters:
//   scope=...          any space-separated scopes; they are granted exactly as requested
//   resource=URI       urn:mqtt:... or http(s)://...: the token becomes an RFC 9068 JWT (RS256)
//                      whose aud is URI
//   token_format=opaque|jwt   override the format (with resource only; a JWT needs an audience)
//   ttl=SECONDS        lifetime of this token (default 3600)
//   sub=VALUE          subject of this token (default: the client id)
//
// Clients (static): mqtt-broker / broker-secret (client_secret_basic) and mqtt-broker-post /
// broker-secret-post (client_secret_post) may introspect and revoke any token; device-1, device-2,
// device-3 and wildcat (secret "<id>-secret", client_secret_basic) get tokens.
//
// Certificate-bound tokens (RFC 8705 §3): bound-device (secret "bound-device-secret") is
// registered with tls_client_certificate_bound_access_tokens, so its tokens carry
// cnf.x5t#S256 (in the JWT, and in the introspection answer of opaque ones) of the TLS client
// certificate it presented. This server speaks plain http, so the certificate arrives as a
// TLS-terminating proxy forwards it: URL-encoded PEM in the X-SSL-Client-Cert header (nginx's
// $ssl_client_escaped_cert). A token request of bound-device without it is refused.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

// oidc-provider prints its notices with console.info; stdout carries only the ready line.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

// oidc-provider 9 warns on import about any Node.js older than 22 LTS. It runs fine on the
// Node 20 the project's machines have (the smoke tests prove it), so that one line is dropped
// rather than repeated for every server a test suite starts. Other warnings pass through.
const warn = console.warn;
console.warn = (...parts) => {
  if (!String(parts[0]).includes('Unsupported runtime')) warn(...parts);
};
const { default: Provider, errors } = await import('oidc-provider');

const DEFAULT_TTL_SECONDS = 3600;
const BROKER_CLIENTS = new Set(['mqtt-broker', 'mqtt-broker-post']);
const DEVICE_CLIENTS = ['device-1', 'device-2', 'device-3', 'wildcat'];
const BOUND_DEVICE_CLIENTS = new Set(['bound-device']);
const CLIENT_CERTIFICATE_HEADER = 'x-ssl-client-cert';

// ---------------------------------------------------------------------------------------------
// Command line

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'introspection-delay-ms': { type: 'string', default: '0' },
    keys: { type: 'string' },
    'gen-keys': { type: 'string' },
  },
  strict: true,
});

function nonNegativeInteger(text, what) {
  if (!/^\d+$/.test(text)) {
    throw new TypeError(`${what} must be a non-negative integer, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

// ---------------------------------------------------------------------------------------------
// Keys: generated at startup (nothing secret is committed), or loaded from a private JWKS file.

function thumbprint(jwk) {
  // RFC 7638: the required members, in lexicographic order, without whitespace.
  const members = jwk.kty === 'RSA' ? ['e', 'kty', 'n'] : ['crv', 'kty', 'x', 'y'];
  const canonical = JSON.stringify(Object.fromEntries(members.map((m) => [m, jwk[m]])));
  return crypto.createHash('sha256').update(canonical).digest('base64url');
}

function generateJwks() {
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return {
    keys: [
      { ...rsa, kid: thumbprint(rsa), alg: 'RS256', use: 'sig' },
      { ...ec, kid: thumbprint(ec), alg: 'ES256', use: 'sig' },
    ],
  };
}

if (args['gen-keys']) {
  fs.writeFileSync(args['gen-keys'], `${JSON.stringify(generateJwks(), null, 2)}\n`, { mode: 0o600 });
  process.exit(0);
}

const jwks = args.keys ? JSON.parse(fs.readFileSync(args.keys, 'utf8')) : generateJwks();

// ---------------------------------------------------------------------------------------------
// Storage: unbounded in-memory adapter. (The bundled memory adapter is an LRU of ~1000 entries,
// which would silently forget tokens during load tests.)

const storage = new Map();

function storageKey(model, id) {
  return `${model}:${id}`;
}

function live(key) {
  const entry = storage.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
    storage.delete(key);
    return undefined;
  }
  return entry;
}

class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  async upsert(id, payload, expiresIn) {
    // Kept a minute past expiry: the models themselves decide what is expired.
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + (expiresIn + 60) * 1000 : undefined;
    storage.set(storageKey(this.model, id), { payload, expiresAt });
    if (payload.grantId) {
      const grantKey = storageKey('Grant-members', payload.grantId);
      const members = live(grantKey)?.payload ?? [];
      members.push(storageKey(this.model, id));
      storage.set(grantKey, { payload: members, expiresAt });
    }
    if (payload.userCode) {
      storage.set(storageKey('UserCode', payload.userCode), { payload: id, expiresAt });
    }
    if (payload.uid) {
      storage.set(storageKey('SessionUid', payload.uid), { payload: id, expiresAt });
    }
  }

  async find(id) {
    return live(storageKey(this.model, id))?.payload;
  }

  async findByUserCode(userCode) {
    const id = live(storageKey('UserCode', userCode))?.payload;
    return id === undefined ? undefined : this.find(id);
  }

  async findByUid(uid) {
    const id = live(storageKey('SessionUid', uid))?.payload;
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const entry = live(storageKey(this.model, id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    storage.delete(storageKey(this.model, id));
  }

  async revokeByGrantId(grantId) {
    const grantKey = storageKey('Grant-members', grantId);
    for (const key of live(grantKey)?.payload ?? []) storage.delete(key);
    storage.delete(grantKey);
  }
}

setInterval(() => {
  for (const key of storage.keys()) live(key);
}, 60_000).unref();

// ---------------------------------------------------------------------------------------------
// Resource servers: any urn:mqtt:... or http(s)://... resource indicator is accepted.

function acceptedResource(resource) {
  const url = URL.parse(resource);
  if (!url || url.hash || resource.includes('#')) return false;
  if (url.protocol === 'urn:') return resource.startsWith('urn:mqtt:') && resource.length > 'urn:mqtt:'.length;
  return (url.protocol === 'http:' || url.protocol === 'https:') && url.host !== '';
}

// Scopes are granted exactly as requested: in order, duplicates dropped.
function requestedScope(ctx) {
  const scopes = [...new Set((ctx.oidc.params.scope ?? '').split(' ').filter(Boolean))];
  return scopes.join(' ');
}

async function getResourceServerInfo(ctx, resource) {
  if (!acceptedResource(resource)) {
    throw new errors.InvalidTarget('resource must be urn:mqtt:... or an http(s) URL');
  }
  return {
    scope: requestedScope(ctx),
    audience: resource,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  };
}

// ---------------------------------------------------------------------------------------------
// Provider

function tokenTtl(ctx, token) {
  return token.resourceServer?.accessTokenTTL ?? DEFAULT_TTL_SECONDS;
}

const clients = [
  { client_id: 'mqtt-broker', client_secret: 'broker-secret', auth: 'client_secret_basic' },
  { client_id: 'mqtt-broker-post', client_secret: 'broker-secret-post', auth: 'client_secret_post' },
  ...[...DEVICE_CLIENTS, ...BOUND_DEVICE_CLIENTS].map((id) => ({ client_id: id, client_secret: `${id}-secret`, auth: 'client_secret_basic' })),
].map(({ client_id, client_secret, auth }) => ({
  client_id,
  client_secret,
  token_endpoint_auth_method: auth,
  tls_client_certificate_bound_access_tokens: BOUND_DEVICE_CLIENTS.has(client_id),
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
}));

// The client's TLS certificate as its proxy forwards it (see the header comment), or undefined.
function forwardedCertificate(ctx) {
  const header = ctx.get(CLIENT_CERTIFICATE_HEADER);
  if (!header) return undefined;
  try {
    return decodeURIComponent(header);
  } catch {
    return undefined;
  }
}

const configuration = {
  adapter: MapAdapter,
  clients,
  jwks,
  features: {
    devInteractions: { enabled: false },
    mTLS: {
      enabled: true,
      certificateBoundAccessTokens: true,
      getCertificate: forwardedCertificate,
    },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // Brokers (resource servers) may introspect any token, other clients only their own.
      allowedPolicy: async (ctx, client, token) => BROKER_CLIENTS.has(client.clientId) || token.clientId === client.clientId,
    },
    revocation: {
      enabled: true,
      allowedPolicy: async (ctx, client, token) => {
        if (BROKER_CLIENTS.has(client.clientId) || token.clientId === client.clientId) return true;
        throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => undefined,
      useGrantedResource: async () => false,
      getResourceServerInfo,
    },
  },
  ttl: { ClientCredentials: tokenTtl },
  // Client credentials tokens carry no subject by default: give them one (the client id, or the
  // request's sub parameter). Stored with the token, so introspection reports it too.
  extraTokenClaims: async (ctx, token) => {
    if (token.kind !== 'ClientCredentials') return undefined;
    return { sub: ctx?.oidc?.params?.sub ?? token.clientId };
  },
  formats: {
    customizers: {
      // The JWT formatter sets sub to the client id after spreading the extra claims.
      jwt: async (ctx, token, jwt) => {
        if (token.extra?.sub !== undefined) jwt.payload.sub = token.extra.sub;
      },
    },
  },
  // oidc-provider's defaults, spelled out because the harness and the comment above rely on them.
  routes: {
    introspection: '/token/introspection',
    jwks: '/jwks',
    revocation: '/token/revocation',
    token: '/token',
  },
  clientDefaults: {
    grant_types: ['client_credentials'],
    response_types: [],
    id_token_signed_response_alg: 'RS256',
  },
};

// The built-in client_credentials handler keeps only scopes declared in the provider's static
// `scopes` list when no resource is requested, and strips unknown request parameters. Tests need
// arbitrary scopes (mqtt:read:<filter>, ...) and per-token ttl/sub, so the grant is registered
// again through the public registerGrantType API. Token models, storage, JWT formatting and
// signing, introspection and revocation stay oidc-provider's.
async function clientCredentialsGrant(ctx) {
  const { provider, params, client } = ctx.oidc;

  let ttl;
  if (params.ttl !== undefined) {
    if (!/^[1-9]\d{0,8}$/.test(params.ttl)) {
      throw new errors.InvalidRequest('ttl must be a positive integer (seconds)');
    }
    ttl = Number(params.ttl);
  }
  if (params.sub !== undefined && params.sub === '') {
    throw new errors.InvalidRequest('sub must not be empty');
  }
  if (params.token_format !== undefined && !['opaque', 'jwt'].includes(params.token_format)) {
    throw new errors.InvalidRequest('token_format must be opaque or jwt');
  }

  const scope = requestedScope(ctx) || undefined;
  const token = new provider.ClientCredentials({ client, scope, expiresIn: ttl });

  if (params.resource !== undefined) {
    if (Array.isArray(params.resource)) {
      throw new errors.InvalidTarget('only a single resource indicator value is supported for this grant type');
    }
    const info = await getResourceServerInfo(ctx, params.resource, client);
    if (params.token_format) info.accessTokenFormat = params.token_format;
    token.resourceServer = new provider.ResourceServer(params.resource, info);
  } else if (params.token_format === 'jwt') {
    throw new errors.InvalidRequest('a JWT access token needs an audience: add a resource parameter');
  }

  if (client.tlsClientCertificateBoundAccessTokens) {
    const certificate = forwardedCertificate(ctx);
    if (!certificate) throw new errors.InvalidGrant('mutual TLS client certificate not provided');
    token.setThumbprint('x5t', certificate);
  }

  ctx.oidc.entity('ClientCredentials', token);
  const value = await token.save();

  ctx.body = {
    access_token: value,
    expires_in: token.expiration,
    token_type: token.tokenType,
    scope: token.scope,
  };
}

// ---------------------------------------------------------------------------------------------
// Test hooks: HTTP-level counters and an artificial delay, mounted in front of the provider.

const stats = { introspections: 0, tokens: 0, jwks: 0 };
let delayMs = nonNegativeInteger(args['introspection-delay-ms'], '--introspection-delay-ms');

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

function readBody(request) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    request.on('data', (chunk) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks).toString()));
    request.on('error', reject);
  });
}

// An RS256 JWT of `claims` (an at+jwt, as the token endpoint issues) with this server's RSA key.
function signClaims(claims) {
  const jwk = jwks.keys.find((key) => key.kty === 'RSA');
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signingInput = `${encode({ alg: 'RS256', typ: 'at+jwt', kid: jwk.kid })}.${encode(claims)}`;
  const key = crypto.createPrivateKey({ key: jwk, format: 'jwk' });
  return `${signingInput}.${crypto.sign('sha256', Buffer.from(signingInput), key).toString('base64url')}`;
}

async function testHooks(ctx, next) {
  if (ctx.path.startsWith('/__test/')) {
    if (ctx.path === '/__test/stats' && ctx.method === 'GET') {
      ctx.body = { ...stats };
    } else if (ctx.path === '/__test/reset' && ctx.method === 'POST') {
      stats.introspections = 0;
      stats.tokens = 0;
      stats.jwks = 0;
      ctx.body = { ...stats };
    } else if (ctx.path === '/__test/sign' && ctx.method === 'POST') {
      ctx.body = { token: signClaims(JSON.parse(await readBody(ctx.req))) };
    } else if (ctx.path === '/__test/delay' && ctx.method === 'POST') {
      try {
        delayMs = nonNegativeInteger(String(ctx.query.ms ?? ''), 'ms');
      } catch (error) {
        ctx.status = 400;
        ctx.body = { error: error.message };
        return;
      }
      ctx.body = { delay_ms: delayMs };
    } else {
      ctx.status = 404;
      ctx.body = { error: 'unknown test endpoint' };
    }
    return;
  }

  const { introspection, token, jwks: jwksPath } = configuration.routes;
  if (ctx.path === introspection) {
    stats.introspections += 1;
    if (delayMs > 0) await sleep(delayMs);
  } else if (ctx.path === token) {
    stats.tokens += 1;
  } else if (ctx.path === jwksPath) {
    stats.jwks += 1;
    if (delayMs > 0) await sleep(delayMs);
  }
  await next();
}

// ---------------------------------------------------------------------------------------------
// JWT access tokens: oidc-provider keeps no record of them, so its introspection answers them
// {"active":false} and its revocation ignores them. ForgeRock AM and Keycloak answer for and
// revoke the JWTs they issue, and brokers rely on it (oauth_jwt_revocation introspect); so does
// this server, after oidc-provider has authenticated the client and answered: a JWT signed by
// one of our keys is active until revoked (by jti) or expired, and introspection then returns
// its claims.

const revokedJtis = new Set();

function issuedJwtClaims(token, issuer) {
  const parts = typeof token === 'string' ? token.split('.') : [];
  if (parts.length !== 3) return undefined;
  try {
    const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
    const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
    const jwk = jwks.keys.find((key) => key.kid === header.kid);
    if (!jwk || header.alg !== 'RS256' || claims.iss !== issuer) return undefined;
    const publicKey = crypto.createPublicKey({ key: jwk, format: 'jwk' });
    const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
    const signature = Buffer.from(parts[2], 'base64url');
    return crypto.verify('sha256', signed, publicKey, signature) ? claims : undefined;
  } catch {
    return undefined;
  }
}

function jwtIntrospectionAndRevocation(issuer) {
  return async (ctx, next) => {
    const { introspection, revocation } = configuration.routes;
    const route = ctx.method === 'POST' ? ctx.path : undefined;
    if (route !== introspection && route !== revocation) {
      await next();
      return;
    }
    await next();
    // oidc-provider refuses JWTs with unsupported_token_type once the client is authenticated.
    const caller = ctx.oidc?.client?.clientId;
    if (ctx.body?.error !== 'unsupported_token_type' || caller === undefined) return;
    ctx.status = 200;
    ctx.body = route === revocation ? '' : { active: false };
    const claims = issuedJwtClaims(ctx.oidc.params?.token, issuer);
    if (!claims) return;
    if (!(BROKER_CLIENTS.has(caller) || claims.client_id === caller)) {
      if (route === revocation) {
        ctx.status = 400;
        ctx.body = { error: 'invalid_request', error_description: 'client is not authorized to revoke the presented token' };
      }
      return;
    }
    if (route === revocation) {
      revokedJtis.add(claims.jti);
    } else if (!revokedJtis.has(claims.jti) && claims.exp > Date.now() / 1000) {
      ctx.body = { ...claims, active: true, token_type: 'Bearer' };
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Start: bind first (the port may be OS-chosen), then build the provider with the real issuer.

const server = http.createServer();
server.listen(nonNegativeInteger(args.port, '--port'), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, configuration);
  provider.registerGrantType(
    'client_credentials',
    clientCredentialsGrant,
    ['scope', 'resource', 'ttl', 'sub', 'token_format'],
    ['resource'],
  );
  provider.use(testHooks);
  provider.use(jwtIntrospectionAndRevocation(issuer));
  provider.on('server_error', (ctx, error) => console.error('server_error', error));
  server.on('request', provider.callback());
  process.stdout.write(`IDP_READY ${JSON.stringify({ issuer, port })}\n`);
});

// State is in memory only: nothing to flush.
function shutdown() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
