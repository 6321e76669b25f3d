package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	adminapi "github.com/slobridge/slobridge/cmd/internal/admin"
)

// Environment variables read by the admin sub-commands.
const (
	envAdminURL   = "SLOBRIDGE_URL"
	envAdminToken = "SLOBRIDGE_ADMIN_TOKEN"
	envCLIConfig  = "SLOBRIDGE_CLI_CONFIG"
	// maxAdminAnswer caps how much of the server's answer is read.
	maxAdminAnswer = 16 << 20
)

// adminUsage lists the sub-commands.
func adminUsage() string {
	var b strings.Builder
	b.WriteString("usage: slobridge admin <sub-command> [flags]\n\nsub-commands:\n")
	for _, c := range adminCommands {
		fmt.Fprintf(&b, "  %-16s %s\n", c.name, c.summary)
	}
	b.WriteString("\n'slobridge admin <sub-command> --help' shows its flags and an example.\n\n")
	b.WriteString(commonFlagsHelp)
	return b.String()
}

// commonFlagsHelp describes the flags every sub-command takes.
const commonFlagsHelp = `flags of every sub-command:
  --server URL        the bridge's base URL (else $` + envAdminURL + `, else server: in the CLI
                      config file, else http://127.0.0.1:8080)
  --token-file FILE   file holding the admin token (else $` + envAdminToken + `, else token_file:
                      in the CLI config file)
  --cli-config FILE   the CLI config file (else $` + envCLIConfig + `, else
                      slobridge/cli.yaml in the user config directory)
  -o, --output FMT    table (default) or json
  --timeout D         request timeout (default 30s)
`

// commandHelp is `slobridge admin <sub-command> --help`.
func commandHelp(c adminCommand) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: slobridge admin %s", c.name)
	if c.synopsis != "" {
		b.WriteString(" " + c.synopsis)
	}
	fmt.Fprintf(&b, " [flags]\n\n%s\n", c.summary)
	if c.flags != nil {
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		var a adminArgs
		c.flags(fs, &a)
		b.WriteString("\nflags:\n")
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			arg := "--" + f.Name
			if name != "" {
				arg += " " + strings.ToUpper(name)
			}
			def := ""
			if f.DefValue != "" && f.DefValue != "0" {
				def = " (default " + f.DefValue + ")"
			}
			fmt.Fprintf(&b, "  %-28s %s%s\n", arg, usage, def)
		})
	}
	b.WriteString("\nexamples:\n")
	for _, e := range c.examples {
		b.WriteString("  " + e + "\n")
	}
	b.WriteString("\n" + commonFlagsHelp)
	return b.String()
}

// adminClient calls the admin API.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

// commonFlags are the flags every admin sub-command takes.
type commonFlags struct {
	server, tokenFile, cliConfig, output string
	timeout                              time.Duration
}

func (f *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.server, "server", "", "the bridge's base URL")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding the admin token")
	fs.StringVar(&f.cliConfig, "cli-config", "", "the CLI config file")
	fs.StringVar(&f.output, "output", "table", "table or json")
	fs.StringVar(&f.output, "o", "table", "table or json (short for --output)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "request timeout")
}

// cliConfig is the CLI's own config file: where the bridge is and where
// its admin token is kept (never the token itself).
type cliConfig struct {
	Server    string `yaml:"server"`
	TokenFile string `yaml:"token_file"`
}

// loadCLIConfig reads the CLI config file named by the flag or the
// environment, else the default one if it exists. It returns the file's
// settings and its path ("" when there is none).
func loadCLIConfig(flagPath string) (cliConfig, string, error) {
	path, explicit := cmp.Or(flagPath, os.Getenv(envCLIConfig)), true
	if path == "" {
		explicit = false
		dir, err := os.UserConfigDir()
		if err != nil {
			return cliConfig{}, "", nil
		}
		path = filepath.Join(dir, "slobridge", "cli.yaml")
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return cliConfig{}, path + " (not found)", nil
	}
	if err != nil {
		return cliConfig{}, "", fmt.Errorf("CLI config: %w", err)
	}
	var c cliConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return cliConfig{}, "", fmt.Errorf("CLI config %s: %w", path, err)
	}
	if c.TokenFile != "" && !filepath.IsAbs(c.TokenFile) {
		c.TokenFile = filepath.Join(filepath.Dir(path), c.TokenFile)
	}
	return c, path, nil
}

// newAdminClient resolves the server and the token — flag, then
// environment, then the CLI config file — and says which is missing.
func newAdminClient(f commonFlags) (*adminClient, error) {
	cfg, cfgPath, err := loadCLIConfig(f.cliConfig)
	if err != nil {
		return nil, err
	}
	server := cmp.Or(f.server, os.Getenv(envAdminURL), cfg.Server, "http://127.0.0.1:8080")
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("the server %q is not an http(s) URL", server)
	}
	tok, tokenFile := "", f.tokenFile
	if tokenFile == "" {
		tok = os.Getenv(envAdminToken)
	}
	if tok == "" && tokenFile == "" {
		tokenFile = cfg.TokenFile
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read the admin token: %w", err)
		}
		tok = strings.TrimRight(string(b), "\r\n")
	}
	if tok == "" {
		where := "no CLI config file"
		if cfgPath != "" {
			where = "no token_file in " + cfgPath
		}
		return nil, fmt.Errorf("no admin token: pass --token-file FILE, set %s, or set token_file in the CLI config file (%s)", envAdminToken, where)
	}
	return &adminClient{base: strings.TrimSuffix(server, "/"), token: tok, http: &http.Client{
		Timeout:       f.timeout,
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

// runAdmin implements `slobridge admin …`.
func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, adminUsage())
		return errUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, adminUsage())
		return nil
	}
	cmd, ok := findAdminCommand(args[0])
	if !ok {
		return usageErr(stderr, fmt.Sprintf("unknown admin sub-command %q", args[0]))
	}
	for _, a := range args[1:] {
		if a == "--" {
			break
		}
		if a == "-h" || a == "--help" || a == "-help" {
			fmt.Fprint(stdout, commandHelp(cmd))
			return nil
		}
	}
	fs := newFlagSet("admin "+cmd.name, stderr)
	fs.Usage = func() {}
	var common commonFlags
	common.register(fs)
	var a adminArgs
	if cmd.flags != nil {
		cmd.flags(fs, &a)
	}
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return commandUsageErr(stderr, cmd, "")
	}
	a.pos = pos
	if common.output != "table" && common.output != "json" {
		return commandUsageErr(stderr, cmd, fmt.Sprintf("--output must be table or json, not %q", common.output))
	}
	method, path, body, msg := cmd.request(a)
	if msg != "" {
		return commandUsageErr(stderr, cmd, msg)
	}
	if rb, ok := body.(map[string]any); ok && a.authFile != "" {
		b, err := os.ReadFile(a.authFile)
		if err != nil {
			return fmt.Errorf("read --authorization-file: %w", err)
		}
		rb["authorization"] = strings.TrimRight(string(b), "\r\n")
	}
	c, err := newAdminClient(common)
	if err != nil {
		return err
	}
	b, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	switch {
	case len(b) == 0:
		_, err = fmt.Fprintln(stdout, "done")
	case common.output == "json" || cmd.table == nil:
		err = printJSON(stdout, b)
	default:
		if err = cmd.table(stdout, b); err != nil {
			err = fmt.Errorf("the server's answer does not read as expected (try -o json): %w", err)
		}
	}
	return err
}

func usageErr(stderr io.Writer, msg string) error {
	fmt.Fprintf(stderr, "slobridge: %s\n\n%s", msg, adminUsage())
	return errUsage
}

// commandUsageErr reports a usage error of one sub-command with its help.
func commandUsageErr(stderr io.Writer, c adminCommand, msg string) error {
	if msg != "" {
		fmt.Fprintf(stderr, "slobridge: %s\n\n", msg)
	}
	fmt.Fprint(stderr, commandHelp(c))
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
