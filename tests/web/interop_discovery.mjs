// Stock clients against a live silentauth, driven by its RFC 8414 metadata alone:
// oauth4webapi discovers the endpoints and checks the password grant, runs a refresh,
// introspection and revocation as a confidential client; jose verifies the access
// token with createRemoteJWKSet + jwtVerify from the discovered jwks_uri.
// Run by tests/server/test_discovery.py with ISSUER, CLIENT_ID, CLIENT_SECRET set;
// prints one JSON line of findings for the Python side to check.
import * as oauth from "oauth4webapi";
import { createRemoteJWKSet, jwtVerify } from "jose";

const issuer = new URL(process.env.ISSUER);
const http = { [oauth.allowInsecureRequests]: true }; // loopback test server speaks plain http
const client = { client_id: process.env.CLIENT_ID };
const auth = oauth.ClientSecretBasic(process.env.CLIENT_SECRET);

const as = await oauth.processDiscoveryResponse(
  issuer,
  await oauth.discoveryRequest(issuer, { algorithm: "oauth2", ...http }),
);
// oauth4webapi has no password-grant request helper: send it with fetch to the
// discovered token endpoint, and let oauth4webapi judge the answer.
const basic = Buffer.from(
  `${encodeURIComponent(client.client_id)}:${encodeURIComponent(process.env.CLIENT_SECRET)}`,
).toString("base64");
const tokens = await oauth.processGenericTokenEndpointResponse(
  as,
  client,
  await fetch(as.token_endpoint, {
    method: "POST",
    headers: { authorization: `Basic ${basic}` },
    body: new URLSearchParams({ grant_type: "password", username: "alice", password: "secret" }),
  }),
);
const jwks = createRemoteJWKSet(new URL(as.jwks_uri));
const { payload, protectedHeader } = await jwtVerify(tokens.access_token, jwks, {
  issuer: as.issuer,
  audience: "silentauth",
  typ: "at+jwt",
  algorithms: as.access_token_signing_alg_values_supported,
});
const refreshed = await oauth.processRefreshTokenResponse(
  as, client, await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token, http),
);
const introspected = await oauth.processIntrospectionResponse(
  as, client, await oauth.introspectionRequest(as, client, auth, refreshed.access_token, http),
);
await oauth.processRevocationResponse(
  await oauth.revocationRequest(as, client, auth, refreshed.refresh_token, http),
);
const afterRevocation = await oauth.processIntrospectionResponse(
  as, client, await oauth.introspectionRequest(as, client, auth, refreshed.access_token, http),
);
console.log(JSON.stringify({
  issuer: as.issuer,
  token_endpoint: as.token_endpoint,
  alg: protectedHeader.alg,
  client_id: payload.client_id,
  sub: payload.sub,
  introspected: { active: introspected.active, client_id: introspected.client_id, username: introspected.username },
  after_revocation: afterRevocation.active,
}));
