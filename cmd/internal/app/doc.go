// Package app wires the slobridge binary together: it reads the YAML
// configuration (Load), opens the store, builds the logout engine and its
// notifiers, the OpenID Provider, the Shared Signals transmitter, the
// upstream authenticator, the logout page, the admin API and the
// operational endpoints, and serves them (App.Run). It is the only place
// the parts are wired; it holds no protocol logic of its own, except the
// development-only static authenticator.
package app
