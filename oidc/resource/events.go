package resource

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/slobridge/slobridge/oidc/ssf"
)

// maxSETBytes caps a pushed SET.
const maxSETBytes = 64 << 10

// setSkew is the clock difference allowed on a SET's iat.
const setSkew = 5 * time.Minute

// errKeysUnavailable reports that the bridge's JWKS could not be fetched,
// so a SET could not be checked at all.
var errKeysUnavailable = errors.New("resource: the bridge's signing keys are unavailable")

// EventHandler is the RFC 8935 push endpoint: it verifies each pushed
// session-revoked SET (signature against the bridge's keys, typ
// secevent+jwt, iss, aud) and records the session as ended. It answers 202
// on success, 400 with {"err","description"} for a SET it refuses, and 503
// when the bridge's JWKS cannot be fetched (a retryable failure).
func (g *Guard) EventHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if want := g.opts.PushAuthorization; want != "" &&
			subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) != 1 {
			writePushError(w, http.StatusUnauthorized, "authentication_failed", "missing or wrong credentials")
			return
		}
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != ssf.ContentType {
			writePushError(w, http.StatusBadRequest, "invalid_request", "content type must be "+ssf.ContentType)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSETBytes))
		if err != nil {
			writePushError(w, http.StatusBadRequest, "invalid_request", "body too large or unreadable")
			return
		}
		code, err := g.acceptSET(r, string(body))
		if errors.Is(err, errKeysUnavailable) {
			// Not a verdict on the SET: the bridge retries a 5xx, while a
			// 400 invalid_key would make it give up (RFC 8935 §2.4).
			g.log.Warn("resource: SET not checked", "err", err)
			w.Header().Set("Retry-After", "5")
			http.Error(w, "the bridge's keys could not be fetched; retry", http.StatusServiceUnavailable)
			return
		}
		if err != nil {
			g.log.Warn("resource: SET refused", "err_code", code, "err", err)
			writePushError(w, http.StatusBadRequest, code, err.Error())
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
}

// acceptSET verifies one SET and applies it; on failure it returns the
// RFC 8935 §2.4 error code.
func (g *Guard) acceptSET(r *http.Request, raw string) (string, error) {
	if err := checkType(raw, ssf.TokenType); err != nil {
		return "invalid_request", err
	}
	payload, err := g.keys.VerifySignature(r.Context(), raw)
	if err != nil {
		// The guard's own key set says errKeysUnavailable; go-oidc's
		// RemoteKeySet (a KeySet given in Options) says it only in its
		// message ("fetching keys ...").
		if errors.Is(err, errKeysUnavailable) || strings.HasPrefix(err.Error(), "fetching keys") {
			return "", fmt.Errorf("%w: %v", errKeysUnavailable, err)
		}
		return "invalid_key", fmt.Errorf("signature: %v", err)
	}
	var c ssf.Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return "invalid_request", fmt.Errorf("claims: %v", err)
	}
	if c.Issuer != g.opts.Issuer {
		return "invalid_issuer", fmt.Errorf("issuer %q is not the bridge", c.Issuer)
	}
	if !slices.Contains(c.Audience, g.opts.Audience) {
		return "invalid_audience", fmt.Errorf("SET is not addressed to %q", g.opts.Audience)
	}
	// A SET is applied once (RFC 8417 §2.2: jti is unique): its jti is
	// remembered for the replay window, and a SET older than the window
	// is refused, so that a replay is never applied.
	if c.ID == "" {
		return "invalid_request", errors.New("SET has no jti")
	}
	iat, now := time.Unix(c.IssuedAt, 0), g.now()
	switch {
	case c.IssuedAt == 0 || iat.Before(now.Add(-g.opts.EndedTTL)):
		return "invalid_request", fmt.Errorf("SET issued at %s is outside the replay window of %s", iat.UTC().Format(time.RFC3339), g.opts.EndedTTL)
	case iat.After(now.Add(setSkew)):
		return "invalid_request", fmt.Errorf("SET issued at %s is in the future", iat.UTC().Format(time.RFC3339))
	}
	if !g.rememberSET(c.ID, now.Add(g.opts.EndedTTL+setSkew)) {
		// Not applied again. It is acknowledged all the same: the bridge
		// sends every retry of a delivery with the same jti, and a retry
		// after a lost 202 must end as delivered, not as refused.
		g.log.Info("resource: SET already received, not applied again", "jti", c.ID)
		return "", nil
	}
	if _, ok := c.Events[ssf.EventSessionRevoked]; !ok {
		// Events we do not act on are still accepted (RFC 8417 §2.2 lets
		// a receiver ignore events it does not understand).
		return "", nil
	}
	sid, err := c.SessionID()
	if err != nil {
		return "invalid_request", err
	}
	g.EndSession(sid)
	g.log.Info("resource: session revoked", "sid", sid, "jti", c.ID)
	return "", nil
}

func writePushError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"err": code, "description": desc})
}
