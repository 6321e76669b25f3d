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

	"github.com/slobridge/slobridge"
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
	req, err := http.NewRequestWithContext(ctx, method, c.base+slobridge.AdminPrefix+path, rd)
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
		var ae slobridge.AdminError
		if json.Unmarshal(b, &ae) == nil && ae.Error != "" {
			return nil, fmt.Errorf("server answered %d: %s: %s", resp.StatusCode, ae.Error, ae.Description)
		}
		return nil, fmt.Errorf("server answered %s", resp.Status)
	}
	return b, nil
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
	user := fs.String("user", "", "user ID")
	session := fs.String("session", "", "session ID")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	var method, path string
	var body any
	switch sub {
	case "sessions":
		if *user == "" || len(pos) != 0 {
			return usageErr(stderr, "admin sessions needs --user USER")
		}
		method, path = http.MethodGet, "/users/"+url.PathEscape(*user)+"/sessions"
	case "logout":
		if (*user == "") == (*session == "") || len(pos) != 0 {
			return usageErr(stderr, "admin logout needs exactly one of --session SID and --user USER")
		}
		method, path = http.MethodPost, "/logouts"
		body = slobridge.AdminLogoutRequest{SessionID: *session, UserID: *user}
	case "status", "retry":
		if len(pos) != 1 || pos[0] == "" {
			return usageErr(stderr, "admin "+sub+" needs one LOGOUT_ID")
		}
		method, path = http.MethodGet, "/logouts/"+url.PathEscape(pos[0])
		if sub == "retry" {
			method, path = http.MethodPost, path+"/retry"
		}
	default:
		return usageErr(stderr, fmt.Sprintf("unknown admin sub-command %q", sub))
	}
	c, err := newAdminClient(*server, *tokenFile, *timeout)
	if err != nil {
		return err
	}
	b, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	return printJSON(stdout, b)
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
