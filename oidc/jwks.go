package oidc

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"
)

// RotateKey starts an unscheduled rotation of the alg signing key: the
// successor is published now and signs after KeyPublishAhead. Scheduled
// rotation happens by itself when a key nears its NotAfter.
func (p *Provider) RotateKey(ctx context.Context, alg string) error {
	return p.keys.Rotate(ctx, alg)
}

// handleJWKS publishes every key that is signing, will sign, or signed a
// token that may not have expired yet (RFC 7517 JWK Set).
func (p *Provider) handleJWKS(c *gin.Context) {
	ctx := c.Request.Context()
	// Make sure the default key exists so the set is never empty.
	if _, err := p.keys.signer(ctx, p.opts.SigningAlg); err != nil {
		p.renderJSONError(c, serverErr(err))
		return
	}
	set, err := p.keys.JWKS(ctx)
	if err != nil {
		p.renderJSONError(c, serverErr(err))
		return
	}
	// Short cache: RPs refetch on an unknown kid anyway, and a successor
	// is published KeyPublishAhead before it signs.
	c.Header("Cache-Control", "public, max-age=300")
	c.JSON(http.StatusOK, set)
}
