package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/slobridge/slobridge/oidc"
)

// maxBody caps what the tool reads of any answer.
const maxBody = 1 << 20

// rp is one OIDC client registered at the bridge by dynamic registration.
type rp struct {
	ID, Secret  string
	RedirectURI string
}

// tokens is what a completed code flow yields.
type tokens struct {
	IDToken, AccessToken, RefreshToken string
	SID                                string
}

// loader talks to the bridge over HTTP like browsers and relying parties
// do. Its transport keeps enough idle connections for the concurrency.
type loader struct {
	t *target
	// alg is the apps' id_token_signed_response_alg ("" for the bridge's
	// default); the bridge signs their logout tokens with it too.
	alg string
	hc  *http.Client // never follows redirects: the flows read each Location
}

func newLoader(t *target, conns int) *loader {
	tr := &http.Transport{
		Proxy: nil, MaxIdleConns: conns * 4, MaxIdleConnsPerHost: conns * 4, IdleConnTimeout: time.Minute,
		DialContext: (&netDialer).DialContext,
	}
	return &loader{t: t, hc: &http.Client{
		Transport: tr, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// register registers a confidential client whose back-channel logout URI
// is bcURL ("" for none) and whose redirect URI is never served: the flows
// stop at the redirect and take the code from its Location.
func (l *loader) register(ctx context.Context, name, bcURL string) (rp, error) {
	md := map[string]any{
		"client_name":                name,
		"redirect_uris":              []string{"http://127.0.0.1:9/" + name + "/callback"},
		"token_endpoint_auth_method": oidc.AuthSecretBasic,
	}
	if l.alg != "" {
		md["id_token_signed_response_alg"] = l.alg
	}
	if bcURL != "" {
		md["backchannel_logout_uri"] = bcURL
		md["backchannel_logout_session_required"] = true
	}
	body, _ := json.Marshal(md)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.t.BaseURL+oidc.PathRegister, bytes.NewReader(body))
	if err != nil {
		return rp{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+l.t.RegistrationToken)
	var out oidc.RegistrationResponse
	if err := l.doJSON(req, http.StatusCreated, &out); err != nil {
		return rp{}, fmt.Errorf("register client %s: %w", name, err)
	}
	return rp{ID: out.ClientID, Secret: out.ClientSecret, RedirectURI: out.RedirectURIs[0]}, nil
}

// doJSON sends req and decodes a JSON answer with the wanted status.
func (l *loader) doJSON(req *http.Request, want int, out any) error {
	resp, err := l.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: HTTP %d: %s", req.Method, req.URL.Path, resp.StatusCode, trim(body))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

func trim(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// browser is one person's browser: a cookie jar shared by its requests.
type browser struct {
	l   *loader
	jar http.CookieJar
}

func (l *loader) newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{l: l, jar: jar}
}

// do sends one browser request (no redirect following) with the jar.
func (b *browser) do(req *http.Request) (*http.Response, []byte, error) {
	for _, c := range b.jar.Cookies(req.URL) {
		req.AddCookie(c)
	}
	resp, err := b.l.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, nil, err
	}
	if cs := resp.Cookies(); len(cs) > 0 {
		b.jar.SetCookies(req.URL, cs)
	}
	return resp, body, nil
}

// formRE and inputRE find the login form of the static upstream (or any
// simple HTML form: an upstream IdP's auto-submitting SAML POST form).
var (
	formRE  = regexp.MustCompile(`(?is)<form[^>]*\baction="([^"]*)"[^>]*>(.*?)</form>`)
	inputRE = regexp.MustCompile(`(?is)<input\b[^>]*>`)
	attrRE  = regexp.MustCompile(`(?is)\b(name|value|type)="([^"]*)"`)
)

// submitForm fills the first form of page (hidden fields as given,
// username and password from the target) and posts it.
func (b *browser) submitForm(ctx context.Context, pageURL *url.URL, page []byte) (*http.Response, []byte, *url.URL, error) {
	m := formRE.FindSubmatch(page)
	if m == nil {
		return nil, nil, nil, fmt.Errorf("no form on %s: %s", pageURL.Path, trim(page))
	}
	action, err := pageURL.Parse(html.UnescapeString(string(m[1])))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("form action: %w", err)
	}
	form := url.Values{}
	for _, in := range inputRE.FindAll(m[2], -1) {
		attrs := map[string]string{}
		for _, a := range attrRE.FindAllSubmatch(in, -1) {
			attrs[strings.ToLower(string(a[1]))] = html.UnescapeString(string(a[2]))
		}
		switch name := attrs["name"]; {
		case name == "":
		case name == "username" || name == "user":
			form.Set(name, b.l.t.Username)
		case name == "password" || attrs["type"] == "password":
			form.Set(name, b.l.t.Password)
		default:
			form.Set(name, attrs["value"])
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, body, err := b.do(req)
	return resp, body, action, err
}

// login runs the authorization code flow with PKCE for client c in this
// browser: authorize, the upstream login when the browser has no bridge
// session, the redirect with the code, and the token request. It checks
// state and that the ID token carries a sid.
func (b *browser) login(ctx context.Context, c rp) (tokens, error) {
	state, nonce, verifier := randomToken()[:22], randomToken()[:22], randomToken()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type": {"code"}, "client_id": {c.ID}, "redirect_uri": {c.RedirectURI}, "scope": {"openid email"},
		"state": {state}, "nonce": {nonce}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	next, err := url.Parse(b.l.t.BaseURL + oidc.PathAuthorize + "?" + q.Encode())
	if err != nil {
		return tokens{}, err
	}
	var code string
	for hops := 0; code == "" && hops < 10; hops++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next.String(), nil)
		if err != nil {
			return tokens{}, err
		}
		resp, body, err := b.do(req)
		if err != nil {
			return tokens{}, err
		}
		if resp.StatusCode == http.StatusOK {
			// A login page: fill it in and post it.
			resp, body, next, err = b.submitForm(ctx, next, body)
			if err != nil {
				return tokens{}, err
			}
		}
		if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
			return tokens{}, fmt.Errorf("login at %s: HTTP %d: %s", next.Path, resp.StatusCode, trim(body))
		}
		loc, err := next.Parse(resp.Header.Get("Location"))
		if err != nil {
			return tokens{}, fmt.Errorf("login: bad Location: %w", err)
		}
		if strings.HasPrefix(loc.String(), c.RedirectURI+"?") {
			v := loc.Query()
			if e := v.Get("error"); e != "" {
				return tokens{}, fmt.Errorf("authorize: %s: %s", e, v.Get("error_description"))
			}
			if v.Get("state") != state {
				return tokens{}, errors.New("authorize: state does not match")
			}
			code = v.Get("code")
			break
		}
		next = loc
	}
	if code == "" {
		return tokens{}, errors.New("login: no code after 10 redirects")
	}
	return b.l.exchange(ctx, c, code, verifier, nonce)
}

// exchange redeems a code at the token endpoint with client_secret_basic.
func (l *loader) exchange(ctx context.Context, c rp, code, verifier, nonce string) (tokens, error) {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURI}, "code_verifier": {verifier}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.t.BaseURL+oidc.PathToken, strings.NewReader(form.Encode()))
	if err != nil {
		return tokens{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	var tr oidc.TokenResponse
	if err := l.doJSON(req, http.StatusOK, &tr); err != nil {
		return tokens{}, fmt.Errorf("token: %w", err)
	}
	var claims struct {
		SID   string `json:"sid"`
		Nonce string `json:"nonce"`
	}
	if err := jwtPayload(tr.IDToken, &claims); err != nil {
		return tokens{}, fmt.Errorf("token: ID token: %w", err)
	}
	if claims.SID == "" || claims.Nonce != nonce {
		return tokens{}, fmt.Errorf("token: ID token without sid or with another nonce")
	}
	return tokens{IDToken: tr.IDToken, AccessToken: tr.AccessToken, RefreshToken: tr.RefreshToken, SID: claims.SID}, nil
}

// jwtPayload decodes the payload of a compact JWS without verifying it;
// the tool's receivers and checks that need a verified token use
// verifier.
func jwtPayload(raw string, v any) error {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return errors.New("not a compact JWS")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	return json.Unmarshal(b, v)
}

// endSession runs RP-Initiated Logout with id_token_hint and returns the
// logout ID from the logout page the bridge redirects to.
func (b *browser) endSession(ctx context.Context, idToken string) (string, error) {
	u := b.l.t.BaseURL + oidc.PathEndSession + "?" + url.Values{"id_token_hint": {idToken}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, body, err := b.do(req)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusSeeOther {
		return "", fmt.Errorf("end-session: HTTP %d: %s", resp.StatusCode, trim(body))
	}
	loc := resp.Header.Get("Location")
	i := strings.LastIndex(loc, "/")
	if i < 0 || !strings.Contains(loc, "/logout/page/") {
		return "", fmt.Errorf("end-session: unexpected redirect to %q", loc)
	}
	return loc[i+1:], nil
}

// admin calls the admin API with the admin token.
func (l *loader) admin(ctx context.Context, method, path string, in, out any, want int) error {
	if l.t.AdminToken == "" {
		return errors.New("no admin token (set -admin-token or SLOBLOAD_ADMIN_TOKEN)")
	}
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, l.t.BaseURL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+l.t.AdminToken)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return l.doJSON(req, want, out)
}
