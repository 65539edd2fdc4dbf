// node oidc-provider (https://github.com/panva/node-oidc-provider) as a refresh peer.
//
//   node server.mjs PORT [opaque|idtoken]
//
// One public client (token_endpoint_auth_method "none", PKCE), refresh-token
// rotation on (`rotateRefreshToken: true`; a consumed refresh token presented
// again revokes its grant). Tokens live in oidc-provider's own in-memory
// adapter, whose LRU is sized here so that nothing is evicted during a run
// (the shipped default holds 1,000 entries): nothing is durable.
//
// - "opaque": scope "api" without "openid": the refresh grant answers an
//   opaque access token and a new opaque refresh token, and signs nothing.
// - "idtoken": scope "openid api": every refresh also signs an RS256 ID token.
//
// Before serving, the process makes BENCH_SESSIONS (default 256) sessions
// through real authorization-code + PKCE flows against itself over HTTP
// (authorization request, interaction, code exchange); POST /bench/session
// then hands out one of their refresh tokens per call (the load generator's
// "login"), and GET /noop is the no-op baseline (503 until setup is done).
import crypto from 'node:crypto';

import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

const here = new URL('./node_modules/oidc-provider/lib/', import.meta.url);
const { default: MemoryAdapter } = await import(new URL('adapters/memory_adapter.js', here));
const { default: LRU } = await import(new URL('helpers/lru.js', here));

const port = Number(process.argv[2] ?? 8100);
const mode = process.argv[3] ?? 'opaque';
const sessions = Number(process.env.BENCH_SESSIONS ?? 256);
const issuer = `http://127.0.0.1:${port}`;
const redirectUri = 'http://127.0.0.1/callback';
const scope = mode === 'idtoken' ? 'openid api' : 'api';

// Every rotation adds entries (tokens, grant index); ten million is far beyond a run.
const store = new LRU({ maxSize: 10_000_000 });

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: 'bench' };

const provider = new Provider(issuer, {
  adapter: (model) => new MemoryAdapter(model, store),
  clients: [{
    client_id: 'bench',
    token_endpoint_auth_method: 'none',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  }],
  jwks: { keys: [jwk] },
  scopes: ['openid', 'api'],
  findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: { devInteractions: { enabled: false } },
  rotateRefreshToken: true,
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  expiresWithSession: async () => false,
  ttl: {
    AccessToken: 900, RefreshToken: 14 * 24 * 3600, AuthorizationCode: 60, Grant: 14 * 24 * 3600,
    IdToken: 900, Interaction: 600, Session: 14 * 24 * 3600,
  },
  cookies: { keys: ['bench-only-oidc-provider-cookie-key'] },
});

let ready = false;
const tokens = [];

provider.use(async (ctx, next) => {
  if (ctx.path === '/noop') {
    ctx.status = ready ? 200 : 503;
    ctx.body = { ok: ready };
    return;
  }
  if (ctx.path === '/bench/session' && ctx.method === 'POST') {
    const token = tokens.pop();
    ctx.status = token ? 200 : 409;
    ctx.body = token ? { refresh_token: token } : { error: 'no sessions left' };
    return;
  }
  if (ctx.path.startsWith('/interaction/')) {
    // The user logs in and consents at once: a grant for the requested scope.
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const grant = new provider.Grant({ accountId: 'bench', clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    const grantId = await grant.save();
    await provider.interactionFinished(ctx.req, ctx.res, {
      login: { accountId: 'bench' },
      consent: { grantId },
    }, { mergeWithLastSubmission: false });
    return;
  }
  await next();
});

const b64url = (buf) => buf.toString('base64url');

// One authorization-code + PKCE flow over HTTP, following redirects by hand
// with a cookie jar, as a browser would; returns the first refresh token.
async function codeFlow() {
  const jar = new Map();
  const verifier = b64url(crypto.randomBytes(32));
  const challenge = b64url(crypto.createHash('sha256').update(verifier).digest());
  const params = new URLSearchParams({
    client_id: 'bench', response_type: 'code', redirect_uri: redirectUri, scope,
    code_challenge: challenge, code_challenge_method: 'S256', state: b64url(crypto.randomBytes(8)),
  });
  let url = `${issuer}/auth?${params}`;
  for (let hop = 0; hop < 10; hop += 1) {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const [name, ...value] = pair.split('=');
      jar.set(name.trim(), value.join('='));
    }
    const location = res.headers.get('location');
    if (!location) throw new Error(`authorization flow stopped with ${res.status}: ${await res.text()}`);
    const next = new URL(location, url);
    if (next.href.startsWith(redirectUri)) {
      const code = next.searchParams.get('code');
      if (!code) throw new Error(`no code: ${next.href}`);
      const body = new URLSearchParams({
        grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: 'bench', code_verifier: verifier,
      });
      const tok = await fetch(`${issuer}/token`, { method: 'POST', body });
      const json = await tok.json();
      if (!json.refresh_token) throw new Error(`code exchange failed: ${JSON.stringify(json)}`);
      return json.refresh_token;
    }
    url = next.href;
  }
  throw new Error('too many redirects');
}

const server = provider.listen(port, '127.0.0.1', async () => {
  try {
    for (let i = 0; i < sessions; i += 1) tokens.push(await codeFlow());
    ready = true;
  } catch (err) {
    console.error(err);
    process.exit(1);
  }
});
// The load generator's connections idle while other stacks take their turn; Node
// closes idle keep-alive connections after 5 s by default, the other servers do not.
server.keepAliveTimeout = 0;
