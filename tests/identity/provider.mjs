// A real OpenID provider (npm oidc-provider, installed by .ci/peers.d/oidc-provider.sh) on
// 127.0.0.1 for the identity tests, configured for what they need:
//
// - JWT access tokens for any resource indicator (RFC 8707): the audience is the resource asked
//   for, with the surfaces' scopes (mcp, openai, a2a, acp, admin, metrics) as resource scopes;
// - client_credentials: `service` (secret `service-secret`) for service tokens, `limited` the
//   same with tool and model globs in custom claims, `short` whose tokens live one second;
// - authorization code + PKCE for clients that register themselves (RFC 7591), as the `mcp`
//   SDK's OAuth client does; the login and consent interaction completes by itself, as the
//   account named by `login_hint` (default `alice`); a client asking for `offline_access`
//   gets refresh tokens, and the account `brief` access tokens that live two seconds;
// - a second provider with the same issuer but keys of its own (`rogue_url`), whose tokens are
//   signed by a key the real issuer never published.
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
const { default: Provider } = await import(
  pathToFileURL(path.join(installDir, 'node_modules', 'oidc-provider', 'lib', 'index.js')).href
);

const SURFACE_SCOPES = 'mcp openai a2a acp admin metrics';
const BRIEF_ACCOUNT = 'brief'; // a person whose access tokens live two seconds (refresh tests)
const LIMITED_CLAIMS = { junction_tools: ['time__*'], junction_models: ['m1'], junction_agents: [] };

function signingKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' };
}

function configuration() {
  return {
    clients: [
      { client_id: 'service', client_secret: 'service-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
      { client_id: 'limited', client_secret: 'limited-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
      { client_id: 'short', client_secret: 'short-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
    ],
    jwks: { keys: [signingKey()] },
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
      ClientCredentials: (ctx, token, client) => (client.clientId === 'short' ? 1 : 600),
      AccessToken: (ctx, token) => (token.accountId === BRIEF_ACCOUNT ? 2 : 600),
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      registration: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: (ctx, client, oneOf) => oneOf,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resourceIndicator) => ({
          scope: SURFACE_SCOPES,
          audience: resourceIndicator,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
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
  const provider = new Provider(issuer, configuration());
  provider.use(autoInteraction(provider));
  server.on('request', provider.callback());
}
process.stdout.write(`${JSON.stringify({ issuer, rogue_url: `http://127.0.0.1:${rogue.address().port}` })}\n`);
process.stdin.on('end', () => process.exit(0)); // the test closes our stdin to stop us
process.stdin.resume();
