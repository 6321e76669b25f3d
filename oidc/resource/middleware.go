package resource

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

type ctxKey struct{}

// TokenFromContext returns the verified token that Middleware stored.
func TokenFromContext(ctx context.Context) (*Token, bool) {
	t, ok := ctx.Value(ctxKey{}).(*Token)
	return t, ok
}

// Middleware admits requests with a valid bearer access token whose session
// is live, and answers 401 otherwise (RFC 6750 §3).
func (g *Guard) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, err := g.authorize(r)
		if err != nil {
			g.deny(w, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, t)))
	})
}

// Gin adapts the guard to a gin router.
func (g *Guard) Gin() gin.HandlerFunc {
	return func(c *gin.Context) {
		t, err := g.authorize(c.Request)
		if err != nil {
			g.deny(c.Writer, err)
			c.Abort()
			return
		}
		c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), ctxKey{}, t))
		c.Next()
	}
}

func (g *Guard) authorize(r *http.Request) (*Token, error) {
	h := r.Header.Get("Authorization")
	scheme, raw, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		return nil, ErrNoToken
	}
	return g.Verify(r.Context(), strings.TrimSpace(raw))
}

func (g *Guard) deny(w http.ResponseWriter, err error) {
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case errors.Is(err, ErrNoToken):
		// RFC 6750 §3.1: no error code when the request had no token.
		w.Header().Set("WWW-Authenticate", `Bearer`)
	case errors.Is(err, ErrSessionEnded):
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="the session has ended"`)
	case errors.Is(err, ErrInvalidToken):
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="the access token is invalid"`)
	default:
		g.log.Warn("resource: token check failed", "err", err)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="the access token could not be checked"`)
	}
	http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
}
