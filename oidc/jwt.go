package oidc

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/slobridge/slobridge/store"
)

// JOSE header typ values (RFC 8725 §3.11 explicit typing).
const (
	typJWT       = "JWT"        // ID tokens (OpenID Connect Core §2)
	typAccess    = "at+jwt"     // access tokens (RFC 9068 §2.1)
	typLogout    = "logout+jwt" // logout tokens (Back-Channel Logout §2.4)
	idTokenClaim = "id_token"
)

// IDTokenClaims are the claims of an ID token (OpenID Connect Core §2),
// with sid (Front-Channel Logout §3, Back-Channel Logout §2.1).
type IDTokenClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience []string `json:"aud"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	AuthTime int64    `json:"auth_time"`
	Nonce    string   `json:"nonce,omitempty"`
	SID      string   `json:"sid"`
	AZP      string   `json:"azp,omitempty"`
	ATHash   string   `json:"at_hash,omitempty"`

	Email             string   `json:"email,omitempty"`
	Name              string   `json:"name,omitempty"`
	PreferredUsername string   `json:"preferred_username,omitempty"`
	Groups            []string `json:"groups,omitempty"`
}

// AccessTokenClaims are the claims of a JWT access token (RFC 9068 §2.2),
// with sid so that resource servers can drop tokens of ended sessions.
type AccessTokenClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"`
	Expiry   int64  `json:"exp"`
	IssuedAt int64  `json:"iat"`
	JTI      string `json:"jti"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope,omitempty"`
	AuthTime int64  `json:"auth_time"`
	SID      string `json:"sid"`
}

// grant is what an authorization code or refresh token stands for.
type grant struct {
	ClientID    string    `json:"client_id"`
	RedirectURI string    `json:"redirect_uri,omitempty"`
	SessionID   string    `json:"sid"`
	UserID      string    `json:"sub"`
	Scope       string    `json:"scope"`
	Nonce       string    `json:"nonce,omitempty"`
	AuthTime    time.Time `json:"auth_time"`
	// Challenge is the PKCE S256 code_challenge, empty when none was sent.
	Challenge string `json:"code_challenge,omitempty"`
	// Access lists the unexpired access tokens issued in this refresh
	// token's family (carried forward on every rotation), so revoking the
	// family revokes them too (RFC 7009 §2.1).
	Access []accessRef `json:"at,omitempty"`
}

// accessRef names one issued access token until it expires.
type accessRef struct {
	JTI string    `json:"jti"`
	Exp time.Time `json:"exp"`
}

// maxFamilyAccess bounds the access tokens remembered per family.
const maxFamilyAccess = 64

// liveAccess returns the refs of a that have not expired at now, plus add,
// keeping at most maxFamilyAccess (the newest).
func liveAccess(a []accessRef, add accessRef, now time.Time) []accessRef {
	out := make([]accessRef, 0, len(a)+1)
	for _, r := range a {
		if r.Exp.After(now) {
			out = append(out, r)
		}
	}
	out = append(out, add)
	if len(out) > maxFamilyAccess {
		out = out[len(out)-maxFamilyAccess:]
	}
	return out
}

// claimsFor maps the session's attributes to standard claims by scope
// (OpenID Connect Core §5.4).
func claimsFor(c *IDTokenClaims, s store.Session, scope string) {
	first := func(k string) string {
		if v := s.Attributes[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	scopes := strings.Fields(scope)
	has := func(x string) bool {
		for _, s := range scopes {
			if s == x {
				return true
			}
		}
		return false
	}
	if has("email") {
		c.Email = first("email")
	}
	if has("profile") {
		c.Name = first("name")
		c.PreferredUsername = first("preferred_username")
	}
	if has("groups") {
		c.Groups = s.Attributes["groups"]
	}
}

// mintIDToken signs an ID token for g with the client's algorithm.
func (p *Provider) mintIDToken(ctx context.Context, cl Client, g grant, s store.Session, accessToken string, now time.Time) (string, error) {
	c := IDTokenClaims{
		Issuer: p.opts.Issuer, Subject: g.UserID, Audience: []string{cl.ID},
		Expiry: now.Add(p.opts.IDTokenTTL).Unix(), IssuedAt: now.Unix(),
		AuthTime: g.AuthTime.Unix(), Nonce: g.Nonce, SID: g.SessionID, AZP: cl.ID,
	}
	alg := p.idTokenAlg(cl.Metadata.IDTokenSignedResponseAlg)
	if accessToken != "" {
		c.ATHash = leftHalfHash(alg, accessToken)
	}
	claimsFor(&c, s, g.Scope)
	return p.keys.sign(ctx, alg, typJWT, c)
}

// mintAccessToken signs a short-lived RFC 9068 access token for g. Its
// audience is the bridge (userinfo) itself.
func (p *Provider) mintAccessToken(ctx context.Context, g grant, now time.Time) (string, AccessTokenClaims, error) {
	jti, err := p.newToken(16)
	if err != nil {
		return "", AccessTokenClaims{}, err
	}
	c := AccessTokenClaims{
		Issuer: p.opts.Issuer, Subject: g.UserID, Audience: p.opts.Issuer,
		Expiry: now.Add(p.accessTokenTTL(g.ClientID)).Unix(), IssuedAt: now.Unix(), JTI: jti,
		ClientID: g.ClientID, Scope: g.Scope, AuthTime: g.AuthTime.Unix(), SID: g.SessionID,
	}
	tok, err := p.keys.sign(ctx, p.opts.AccessTokenAlg, typAccess, c)
	return tok, c, err
}

// accessTokenTTL is the access-token lifetime of a client: its
// StaticClient.AccessTokenTTL, else Options.AccessTokenTTL.
func (p *Provider) accessTokenTTL(clientID string) time.Duration {
	if d, ok := p.clientTTL[clientID]; ok {
		return d
	}
	return p.opts.AccessTokenTTL
}

// SignJWT signs claims with the provider's current key of SigningAlg and
// the JOSE header typ; it is the ssf.Signer of the session-revoked SETs,
// so that receivers verify them against the bridge's JWKS.
func (p *Provider) SignJWT(ctx context.Context, typ string, claims any) (string, error) {
	return p.keys.sign(ctx, p.opts.SigningAlg, typ, claims)
}

// leftHalfHash is at_hash (OpenID Connect Core §3.1.3.6): the left half
// of the hash of the token that goes with the ID token's alg, base64url —
// SHA-256 for RS256, ES256 and PS256, SHA-512 for EdDSA with Ed25519 (Core
// errata set 2).
func leftHalfHash(alg, tok string) string {
	if alg == string(jose.EdDSA) {
		sum := sha512.Sum512([]byte(tok))
		return b64(sum[:32])
	}
	sum := sha256.Sum256([]byte(tok))
	return b64(sum[:16])
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// hashKey is the store key of a secret value (code, refresh token): the
// store never holds the value itself.
func hashKey(v string) string {
	sum := sha256.Sum256([]byte(v))
	return b64(sum[:])
}
