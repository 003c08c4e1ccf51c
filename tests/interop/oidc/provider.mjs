// A certified OpenID provider (npm `oidc-provider`) for the gateway's interop tests: the
// device authorization grant, the authorization-code grant with PKCE (the gateway's approval
// page signs approvers in with it; the provider's own login and consent pages, which accept
// any login), refresh tokens, and JWT access tokens whose audience is the gateway's resource
// URI, carrying the gateway's scopes.
//
// usage: node provider.mjs PORT RESOURCE
//   OIDC_PROVIDER_MODULE  path of oidc-provider's lib/index.js (installed by .ci/run)
//
// POST /test/approve {"user_code", "login", "scopes"?} stands in for the person at the
// verification page (the provider's own pages need a browser): it records the sign-in and
// the grant exactly as the provider's device flow does after its interaction, then the
// client's next poll of the token endpoint succeeds. POST /test/deny {"user_code"} denies.
// Prints "listening on <issuer>" when ready.

import crypto from 'node:crypto';
import { pathToFileURL } from 'node:url';

const [port, resource] = process.argv.slice(2);
if (!port || !resource || !process.env.OIDC_PROVIDER_MODULE) {
  console.error('usage: OIDC_PROVIDER_MODULE=.../oidc-provider/lib/index.js node provider.mjs PORT RESOURCE');
  process.exit(2);
}
const { default: Provider } = await import(pathToFileURL(process.env.OIDC_PROVIDER_MODULE).href);

const issuer = `http://127.0.0.1:${port}`;
const SCOPES = [
  'mcp:logs:read', 'mcp:user:read:basic', 'mcp:user:read:full', 'mcp:analyze:ml',
  'mcp:user:write', 'mcp:sql:read', 'mcp:audit:read', 'mcp:user:notify',
  'mcp:sessions:revoke', 'mcp:actions:rollback', 'mcp:actions:approve',
];
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'interop-1', use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'idgw-cli',
    token_endpoint_auth_method: 'none',
    grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token', 'authorization_code'],
    response_types: ['code'],
    // The approval page of the gateway serving RESOURCE.
    redirect_uris: [`${new URL(resource).origin}/approvals/callback`],
  }],
  jwks: { keys: [jwk] },
  scopes: ['openid', 'offline_access'],
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator) => {
        if (indicator !== resource) throw new Error(`unknown resource ${indicator}`);
        return {
          scope: SCOPES.join(' '),
          audience: resource,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
});
provider.proxy = false;

async function body(req) {
  let text = '';
  for await (const chunk of req) text += chunk;
  return JSON.parse(text || '{}');
}

const callback = provider.callback();
const server = (await import('node:http')).createServer(async (req, res) => {
  if (req.method === 'POST' && (req.url === '/test/approve' || req.url === '/test/deny')) {
    try {
      const { user_code: userCode, login, scopes } = await body(req);
      const normalized = userCode.toUpperCase().replace(/\W/g, '');
      const code = await provider.DeviceCode.findByUserCode(normalized);
      if (!code) throw new Error(`no device code for ${userCode}`);
      if (req.url === '/test/deny') {
        Object.assign(code, { error: 'access_denied', errorDescription: 'End-User denied the request' });
      } else {
        const requested = (code.params.scope || '').split(' ').filter(Boolean);
        const granted = scopes ? requested.filter((s) => scopes.includes(s)) : requested;
        const grant = new provider.Grant({ accountId: login, clientId: code.clientId });
        grant.addOIDCScope(granted.filter((s) => s === 'openid' || s === 'offline_access').join(' '));
        grant.addResourceScope(resource, granted.filter((s) => SCOPES.includes(s)).join(' '));
        const grantId = await grant.save();
        Object.assign(code, {
          accountId: login,
          authTime: Math.floor(Date.now() / 1000),
          grantId,
          scope: granted.join(' '),
          resource,
        });
      }
      await code.save();
      res.writeHead(204).end();
    } catch (e) {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: String(e) }));
    }
    return;
  }
  callback(req, res);
});
server.listen(Number(port), '127.0.0.1', () => console.log(`listening on ${issuer}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
