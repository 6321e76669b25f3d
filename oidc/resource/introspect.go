package resource

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Introspector asks the bridge's RFC 7662 introspection endpoint whether a
// token is active, authenticating as a registered client or resource
// server with HTTP Basic (client_secret_basic).
type Introspector struct {
	URL          string
	ClientID     string
	ClientSecret string
	// Client sends the requests; default http.DefaultClient.
	Client *http.Client
}

// Active reports the `active` member of the introspection answer.
func (in *Introspector) Active(ctx context.Context, token string) (bool, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.URL, strings.NewReader(form.Encode()))
	if err != nil {
		return false, fmt.Errorf("resource: introspection request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(in.ClientID), url.QueryEscape(in.ClientSecret))
	c := in.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, fmt.Errorf("resource: introspection: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("resource: introspection answered HTTP %d", resp.StatusCode)
	}
	var out struct {
		Active bool `json:"active"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&out); err != nil {
		return false, fmt.Errorf("resource: introspection answer: %w", err)
	}
	return out.Active, nil
}
