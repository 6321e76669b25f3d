package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	adminapi "github.com/slobridge/slobridge/cmd/internal/admin"
)

// Environment variables read by the admin sub-commands.
const (
	envAdminURL   = "SLOBRIDGE_URL"
	envAdminToken = "SLOBRIDGE_ADMIN_TOKEN"
	// maxAdminAnswer caps how much of the server's answer is read.
	maxAdminAnswer = 16 << 20
)

const adminUsage = `usage: slobridge admin <sub-command> [flags]

sub-commands:
  sessions --user USER             list the sessions of a user
  logout --session SID             end one session
  logout --user USER               end every session of a user
  status LOGOUT_ID                 the delivery status of a logout
  retry LOGOUT_ID                  retry the failed deliveries of a logout
  receivers                        list the Shared Signals receivers
  add-receiver ID --push-url URL [--name N] [--authorization-file F]
                                   register or replace a receiver
  remove-receiver ID               remove a receiver
  register-sp --metadata-url URL [--name N]
                                   register a SAML SP from its metadata URL
  upstreams                        the upstream IdPs: available or why not, what to register there

flags of every sub-command:
  --server URL        the bridge's base URL (env SLOBRIDGE_URL; default http://127.0.0.1:8080)
  --token-file FILE   read the admin token from FILE (default: env SLOBRIDGE_ADMIN_TOKEN)
  --timeout D         request timeout (default 30s)
`

// adminClient calls the admin API.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

// adminFlags registers the flags shared by every admin sub-command.
func adminFlags(fs *flag.FlagSet) (server, tokenFile *string, timeout *time.Duration) {
	def := os.Getenv(envAdminURL)
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	server = fs.String("server", def, "the bridge's base URL (env "+envAdminURL+")")
	tokenFile = fs.String("token-file", "", "file holding the admin token (default: env "+envAdminToken+")")
	timeout = fs.Duration("timeout", 30*time.Second, "request timeout")
	return
}

func newAdminClient(server, tokenFile string, timeout time.Duration) (*adminClient, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q is not an http(s) URL", server)
	}
	tok := os.Getenv(envAdminToken)
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read --token-file: %w", err)
		}
		tok = strings.TrimRight(string(b), "\r\n")
	}
	if tok == "" {
		return nil, fmt.Errorf("no admin token: set %s or pass --token-file", envAdminToken)
	}
	return &adminClient{base: strings.TrimSuffix(server, "/"), token: tok, http: &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// do sends one request and returns the answer body; a non-2xx answer is
// an error carrying the server's JSON error.
func (c *adminClient) do(ctx context.Context, method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+adminapi.Prefix+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminAnswer))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var ae adminapi.Error
		if json.Unmarshal(b, &ae) == nil && ae.Error != "" {
			return nil, fmt.Errorf("server answered %d: %s: %s", resp.StatusCode, ae.Error, ae.Description)
		}
		return nil, fmt.Errorf("server answered %s", resp.Status)
	}
	return b, nil
}

// adminArgs are the flags and positional arguments of one admin
// sub-command.
type adminArgs struct {
	user, session, pushURL, name, authFile, metadataURL string
	pos                                                 []string
}

// runAdmin implements `slobridge admin …`.
func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, adminUsage)
		return errUsage
	}
	sub := args[0]
	fs := newFlagSet("admin "+sub, stderr)
	server, tokenFile, timeout := adminFlags(fs)
	var a adminArgs
	fs.StringVar(&a.user, "user", "", "user ID")
	fs.StringVar(&a.session, "session", "", "session ID")
	fs.StringVar(&a.pushURL, "push-url", "", "receiver push URL (add-receiver)")
	fs.StringVar(&a.name, "name", "", "display name (add-receiver, register-sp)")
	fs.StringVar(&a.authFile, "authorization-file", "", "file holding the receiver's Authorization header value (add-receiver)")
	fs.StringVar(&a.metadataURL, "metadata-url", "", "SP metadata URL (register-sp)")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	a.pos = pos
	method, path, body, msg := adminRequest(sub, a)
	if msg != "" {
		return usageErr(stderr, msg)
	}
	if a.authFile != "" && sub != "add-receiver" {
		return usageErr(stderr, "--authorization-file is for add-receiver")
	}
	if rb, ok := body.(map[string]any); ok && a.authFile != "" {
		b, err := os.ReadFile(a.authFile)
		if err != nil {
			return fmt.Errorf("read --authorization-file: %w", err)
		}
		rb["authorization"] = strings.TrimRight(string(b), "\r\n")
	}
	c, err := newAdminClient(*server, *tokenFile, *timeout)
	if err != nil {
		return err
	}
	b, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	if len(b) == 0 {
		fmt.Fprintln(stdout, "done")
		return nil
	}
	return printJSON(stdout, b)
}

// adminRequest maps a sub-command to its admin API request; a non-empty
// message is a usage error.
func adminRequest(sub string, a adminArgs) (method, path string, body any, msg string) {
	one := func() (string, bool) {
		if len(a.pos) != 1 || a.pos[0] == "" {
			return "", false
		}
		return url.PathEscape(a.pos[0]), true
	}
	switch sub {
	case "sessions":
		if a.user == "" || len(a.pos) != 0 {
			return "", "", nil, "admin sessions needs --user USER"
		}
		return http.MethodGet, "/users/" + url.PathEscape(a.user) + "/sessions", nil, ""
	case "logout":
		if (a.user == "") == (a.session == "") || len(a.pos) != 0 {
			return "", "", nil, "admin logout needs exactly one of --session SID and --user USER"
		}
		return http.MethodPost, "/logouts", adminapi.LogoutRequest{SessionID: a.session, UserID: a.user}, ""
	case "status", "retry":
		id, ok := one()
		if !ok {
			return "", "", nil, "admin " + sub + " needs one LOGOUT_ID"
		}
		if sub == "retry" {
			return http.MethodPost, "/logouts/" + id + "/retry", nil, ""
		}
		return http.MethodGet, "/logouts/" + id, nil, ""
	case "receivers":
		return http.MethodGet, "/receivers", nil, ""
	case "upstreams":
		if len(a.pos) != 0 {
			return "", "", nil, "admin upstreams takes no arguments"
		}
		return http.MethodGet, "/upstreams", nil, ""
	case "add-receiver":
		id, ok := one()
		if !ok || a.pushURL == "" {
			return "", "", nil, "admin add-receiver needs one RECEIVER_ID and --push-url URL"
		}
		return http.MethodPut, "/receivers/" + id, map[string]any{"push_url": a.pushURL, "name": a.name}, ""
	case "remove-receiver":
		id, ok := one()
		if !ok {
			return "", "", nil, "admin remove-receiver needs one RECEIVER_ID"
		}
		return http.MethodDelete, "/receivers/" + id, nil, ""
	case "register-sp":
		if a.metadataURL == "" || len(a.pos) != 0 {
			return "", "", nil, "admin register-sp needs --metadata-url URL"
		}
		return http.MethodPost, "/saml/sps", map[string]any{"metadata_url": a.metadataURL, "name": a.name}, ""
	}
	return "", "", nil, fmt.Sprintf("unknown admin sub-command %q", sub)
}

func usageErr(stderr io.Writer, msg string) error {
	fmt.Fprintf(stderr, "slobridge: %s\n\n%s", msg, adminUsage)
	return errUsage
}

// printJSON writes an answer indented.
func printJSON(w io.Writer, b []byte) error {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return errors.New("server answered something that is not JSON")
	}
	out.WriteByte('\n')
	_, err := out.WriteTo(w)
	return err
}
