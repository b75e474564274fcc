// A real OpenID provider (npm oidc-provider, installed by .ci/peers.d/oidc-provider.sh) on
// 127.0.0.1 for the identity tests, configured for what they need:
//
// - JWT access tokens for any resource indicator (RFC 8707): the audience is the resource asked
//   for, with the surfaces' scopes (mcp, openai, a2a, acp, admin, metrics) as resource scopes;
// - client_credentials: `service` (secret `service-secret`) for service tokens, `limited` the
//   same with tool and model globs in custom claims, `short` whose tokens live one second,
//   `brief` whose tokens live eight (expiry during a connection);
// - authorization code + PKCE for clients that register themselves (RFC 7591), as the `mcp`
//   SDK's OAuth client does; the login and consent interaction completes by itself, as the
//   account named by `login_hint` (default `alice`); a client asking for `offline_access`
//   gets refresh tokens, and the account `brief` access tokens that live six seconds;
// - a second provider with the same issuer but keys of its own (`rogue_url`), whose tokens are
//   signed by a key the real issuer never published;
// - OAuth 2.0 Token Exchange (RFC 8693) for the client `exchanger` (secret `exchanger-secret`,
//   which may also use client_credentials): an access token this provider issued (the
//   `subject_token`) for a token to `resource` as the same account (oidc-provider has no
//   built-in grant for it; `tokenExchange` registers one).
//
// Usage: node provider.mjs OIDC_INSTALL_DIR. Prints one JSON line when both listen:
// {"issuer": "http://127.0.0.1:PORT", "rogue_url": "http://127.0.0.1:PORT2"}.
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const installDir = process.argv[2];
if (!installDir) {
  console.error('usage: node provider.mjs OIDC_INSTALL_DIR');
  process.exit(2);
}
const providerLib = path.join(installDir, 'node_modules', 'oidc-provider', 'lib');
const { default: Provider, errors } = await import(pathToFileURL(path.join(providerLib, 'index.js')).href);
const { default: ResourceServer } = await import(
  pathToFileURL(path.join(providerLib, 'helpers', 'resource_server.js')).href
);
const jose = await import(
  pathToFileURL(path.join(installDir, 'node_modules', 'jose', 'dist', 'webapi', 'index.js')).href
);
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

const SURFACE_SCOPES = 'mcp openai a2a acp admin metrics';
const BRIEF_ACCOUNT = 'brief'; // a person whose access tokens live six seconds (refresh tests)
const LIMITED_CLAIMS = { junction_tools: ['time__*'], junction_models: ['m1'], junction_agents: [] };

function signingKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' };
}

function resourceServerInfo(ctx, resourceIndicator) {
  return {
    scope: SURFACE_SCOPES,
    audience: resourceIndicator,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  };
}

function configuration(key) {
  return {
    clients: [
      { client_id: 'service', client_secret: 'service-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
      { client_id: 'limited', client_secret: 'limited-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
      { client_id: 'short', client_secret: 'short-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
      { client_id: 'brief', client_secret: 'brief-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
      { client_id: 'exchanger', client_secret: 'exchanger-secret', grant_types: ['client_credentials', TOKEN_EXCHANGE], redirect_uris: [], response_types: [] },
    ],
    jwks: { keys: [key] },
    scopes: ['openid', 'offline_access', ...SURFACE_SCOPES.split(' ')], // clients may register them
    cookies: { keys: [crypto.randomBytes(16).toString('hex')] },
    findAccount: (ctx, id) => ({
      accountId: id,
      claims: async () => ({ sub: id, preferred_username: `${id}@example.org` }),
    }),
    extraTokenClaims: (ctx, token) => {
      if (token.accountId) return { preferred_username: `${token.accountId}@example.org` };
      if (token.clientId === 'limited') return LIMITED_CLAIMS;
      return undefined;
    },
    ttl: {
      ClientCredentials: (ctx, token, client) => (client.clientId === 'short' ? 1 : client.clientId === 'brief' ? 8 : 600),
      AccessToken: (ctx, token) => (token.accountId === BRIEF_ACCOUNT ? 6 : 600),
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      registration: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: (ctx, client, oneOf) => oneOf,
        useGrantedResource: () => true,
        getResourceServerInfo: resourceServerInfo,
      },
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  };
}

// Login as `login_hint` (or alice), consent to everything asked: what a person clicking through
// would do, with no page to click.
function autoInteraction(provider) {
  return async (ctx, next) => {
    if (!ctx.path.startsWith('/interaction/')) return next();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const { prompt, params, session } = details;
    let result;
    if (prompt.name === 'login') {
      result = { login: { accountId: params.login_hint || 'alice' } };
    } else {
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      const missing = prompt.details;
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      result = { consent: { grantId: await grant.save() } };
    }
    ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false }));
  };
}

// RFC 8693: a subject token this provider signed (any audience, not expired) for an access token
// to `resource`, as the subject token's account, with the scopes asked for that the resource has.
function tokenExchange(provider, key) {
  const publicKey = crypto.createPublicKey({ key, format: 'jwk' }).export({ format: 'jwk' });
  const keys = jose.createLocalJWKSet({ keys: [{ ...publicKey, kid: key.kid, alg: 'RS256' }] });
  provider.registerGrantType(
    TOKEN_EXCHANGE,
    async (ctx) => {
      const { params, client } = ctx.oidc;
      if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
        throw new errors.InvalidRequest('subject_token_type must be an access token');
      }
      let subject;
      try {
        ({ payload: subject } = await jose.jwtVerify(params.subject_token, keys, { issuer: provider.issuer }));
      } catch (error) {
        throw new errors.InvalidGrant(`subject_token: ${error.message}`);
      }
      if (!params.resource) throw new errors.InvalidTarget('a resource is required');
      const info = resourceServerInfo(ctx, params.resource);
      const offered = new Set(info.scope.split(' '));
      const scope = (params.scope || '').split(' ').filter((s) => offered.has(s)).join(' ');
      const token = new provider.AccessToken({
        accountId: subject.sub,
        client,
        scope: scope || undefined,
        gty: 'token_exchange',
      });
      token.resourceServer = new ResourceServer(params.resource, info);
      ctx.oidc.entity('AccessToken', token);
      const value = await token.save();
      ctx.body = {
        access_token: value,
        issued_token_type: ACCESS_TOKEN_TYPE,
        token_type: 'Bearer',
        expires_in: token.expiration,
        scope: token.scope,
      };
    },
    ['subject_token', 'subject_token_type', 'scope', 'resource', 'audience'],
  );
}

function listen() {
  return new Promise((resolve) => {
    const server = http.createServer();
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

const main = await listen();
const rogue = await listen();
const issuer = `http://127.0.0.1:${main.address().port}`;
for (const server of [main, rogue]) {
  const key = signingKey();
  const provider = new Provider(issuer, configuration(key));
  tokenExchange(provider, key);
  provider.use(autoInteraction(provider));
  server.on('request', provider.callback());
}
process.stdout.write(`${JSON.stringify({ issuer, rogue_url: `http://127.0.0.1:${rogue.address().port}` })}\n`);
process.stdin.on('end', () => process.exit(0)); // the test closes our stdin to stop us
process.stdin.resume();
