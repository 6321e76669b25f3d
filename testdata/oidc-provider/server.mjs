// A third-party OpenID Provider for slobridge's end-to-end tests: panva's
// oidc-provider (OpenID Certified), pinned in package.json, with its
// development login form (any login, any password) and the features the
// bridge uses as relying party: Back-Channel Logout 1.0 and RP-Initiated
// Logout 1.0 (oidc-provider no longer implements Front-Channel Logout).
// Only the settings below are ours.
//
// Environment: ISSUER (e.g. http://localhost:9000), PORT, and CLIENT, the
// JSON client metadata of the bridge (client_id, client_secret,
// redirect_uris, post_logout_redirect_uris, backchannel_logout_uri ...).
// It prints "listening <port>" once it accepts connections.
import Provider from 'oidc-provider';

const issuer = process.env.ISSUER;
const port = Number(process.env.PORT);
const client = JSON.parse(process.env.CLIENT);

const provider = new Provider(issuer, {
  clients: [client],
  // The development login form and a grant without a consent page: the
  // bridge is a first-party client.
  features: {
    devInteractions: { enabled: true },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.org`, email_verified: true, name: id };
      },
    };
  },
  async loadExistingGrant(ctx) {
    const id = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (id) return ctx.oidc.provider.Grant.find(id);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile');
    await grant.save();
    return grant;
  },
  pkce: { required: () => true },
  cookies: { keys: ['slobridge-test-only-cookie-key'] },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.on('backchannel.error', (...args) => console.error('backchannel.error', ...args.filter((a) => a instanceof Error || typeof a === 'string')));
provider.on('backchannel.success', (...args) => console.log('backchannel.success', ...args.filter((a) => typeof a === 'string')));

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
