// Package demo holds the parts `slobridge demo` runs beside the bridge, all
// on 127.0.0.1: demo OIDC relying parties, a demo SAML service provider, a
// demo API (a resource server using oidc/resource) and the upstream SAML
// IdP. The apps are written as third-party apps would be — standard client
// libraries speaking standard protocols to the bridge — so the demo shows
// single logout across apps that know nothing of slobridge's internals.
package demo
