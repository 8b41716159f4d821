// A real OpenID provider for the console's sign-in tests: panva's certified `oidc-provider`,
// over HTTPS with the certificate the test made, with one confidential client (medsec) and
// three people whose groups the test maps to medsec roles:
//   alice  → medsec-security, medsec-release (security, release)
//   victor → medsec-viewers    (viewer)
//   nobody → no group          (no role: refused)
// Its development sign-in pages accept any password; they are the provider's own pages.
//
// Usage: node oidc-provider.mjs PORT KEY.pem CERT.pem CLIENT_SECRET REDIRECT_URI
import fs from 'node:fs';
import https from 'node:https';
import Provider from 'oidc-provider';

const [port, keyFile, certFile, secret, redirect] = process.argv.slice(2);
const issuer = `https://127.0.0.1:${port}`;
const groups = { alice: ['medsec-security', 'medsec-release'], victor: ['medsec-viewers'], nobody: [] };

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'medsec',
    client_secret: secret,
    redirect_uris: [redirect],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  }],
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email'],
    groups: ['groups'],
  },
  // The ID token carries the scopes' claims (medsec reads the groups from it).
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          preferred_username: id,
          name: id,
          email: `${id}@hospital.example`,
          groups: groups[id] ?? [],
        };
      },
    };
  },
});
provider.proxy = false;
const server = https.createServer(
  { key: fs.readFileSync(keyFile), cert: fs.readFileSync(certFile) },
  provider.callback(),
);
server.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
