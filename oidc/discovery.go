package oidc

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// Discovery is the OpenID Provider Metadata (OpenID Connect Discovery 1.0
// §3, with the Front-Channel Logout §3, Back-Channel Logout §2.1 and
// RP-Initiated Logout §2.1 fields). Every value is what the provider
// actually serves.
type Discovery struct {
	Issuer                                     string   `json:"issuer"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	UserinfoEndpoint                           string   `json:"userinfo_endpoint"`
	JWKSURI                                    string   `json:"jwks_uri"`
	RegistrationEndpoint                       string   `json:"registration_endpoint,omitempty"`
	EndSessionEndpoint                         string   `json:"end_session_endpoint"`
	ScopesSupported                            []string `json:"scopes_supported"`
	ResponseTypesSupported                     []string `json:"response_types_supported"`
	ResponseModesSupported                     []string `json:"response_modes_supported"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	SubjectTypesSupported                      []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported           []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
	ClaimsSupported                            []string `json:"claims_supported"`
	PromptValuesSupported                      []string `json:"prompt_values_supported"`
	RequestParameterSupported                  bool     `json:"request_parameter_supported"`
	RequestURIParameterSupported               bool     `json:"request_uri_parameter_supported"`
	AuthorizationResponseIssParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
	FrontchannelLogoutSupported                bool     `json:"frontchannel_logout_supported"`
	FrontchannelLogoutSessionSupported         bool     `json:"frontchannel_logout_session_supported"`
	BackchannelLogoutSupported                 bool     `json:"backchannel_logout_supported"`
	BackchannelLogoutSessionSupported          bool     `json:"backchannel_logout_session_supported"`
	// RFC 8414 §2 fields of the introspection (RFC 7662) and revocation
	// (RFC 7009) endpoints.
	IntrospectionEndpoint                     string   `json:"introspection_endpoint"`
	IntrospectionEndpointAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported"`
	RevocationEndpoint                        string   `json:"revocation_endpoint"`
	RevocationEndpointAuthMethodsSupported    []string `json:"revocation_endpoint_auth_methods_supported"`
}

// Grant types served by the token endpoint.
const (
	grantAuthorizationCode = "authorization_code"
	grantRefreshToken      = "refresh_token"
)

// Discovery returns the provider's metadata.
func (p *Provider) Discovery() Discovery {
	d := Discovery{
		Issuer:                p.opts.Issuer,
		AuthorizationEndpoint: p.endpoint(PathAuthorize),
		TokenEndpoint:         p.endpoint(PathToken),
		UserinfoEndpoint:      p.endpoint(PathUserinfo),
		JWKSURI:               p.endpoint(PathJWKS),
		EndSessionEndpoint:    p.endpoint(PathEndSession),
		// No offline_access (OpenID Connect Core §11): refresh tokens die
		// with the bridge session, so none grants access while the user is
		// logged out.
		ScopesSupported:                   []string{"openid", "profile", "email", "groups"},
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            responseModes,
		GrantTypesSupported:               []string{grantAuthorizationCode, grantRefreshToken},
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  signingAlgs,
		TokenEndpointAuthMethodsSupported: []string{AuthSecretBasic, AuthSecretPost, AuthNone},
		CodeChallengeMethodsSupported:     []string{"S256"},
		ClaimsSupported: []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid",
			"azp", "at_hash", "email", "name", "preferred_username", "groups"},
		PromptValuesSupported:                      []string{"none", "login"},
		AuthorizationResponseIssParameterSupported: true,
		FrontchannelLogoutSupported:                true,
		FrontchannelLogoutSessionSupported:         true,
		BackchannelLogoutSupported:                 true,
		BackchannelLogoutSessionSupported:          true,
		IntrospectionEndpoint:                      p.endpoint(PathIntrospect),
		IntrospectionEndpointAuthMethodsSupported:  []string{AuthSecretBasic, AuthSecretPost},
		RevocationEndpoint:                         p.endpoint(PathRevoke),
		// Public clients revoke their own tokens with client_id alone
		// (RFC 7009 §5).
		RevocationEndpointAuthMethodsSupported: []string{AuthSecretBasic, AuthSecretPost, AuthNone},
	}
	if p.opts.RegistrationToken != "" {
		d.RegistrationEndpoint = p.endpoint(PathRegister)
	}
	return d
}

func (p *Provider) handleDiscovery(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=300")
	c.JSON(http.StatusOK, p.Discovery())
}
