package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	adminapi "github.com/slobridge/slobridge/cmd/internal/admin"
	"github.com/slobridge/slobridge/store"
)

// adminArgs are the flags and positional arguments of one admin
// sub-command.
type adminArgs struct {
	user, session, pushURL, name, authFile, metadataURL, before string
	limit                                                       int
	pos                                                         []string
}

// adminCommand is one `slobridge admin` sub-command: its own flags, its
// request to the admin API and how its answer reads as a table.
type adminCommand struct {
	name, synopsis, summary string
	// examples are shown by --help.
	examples []string
	// flags registers the command's own flags.
	flags func(fs *flag.FlagSet, a *adminArgs)
	// request maps the arguments to the API request; msg is a usage error.
	request func(a adminArgs) (method, path string, body any, msg string)
	// table writes the answer for people.
	table func(w io.Writer, b []byte) error
}

// Flag registrations shared by several commands.
func userFlag(fs *flag.FlagSet, a *adminArgs) {
	fs.StringVar(&a.user, "user", "", "`USER`: a user ID, an email address or the NameID an upstream knows the user by")
}

func nameFlag(what string) func(fs *flag.FlagSet, a *adminArgs) {
	return func(fs *flag.FlagSet, a *adminArgs) { fs.StringVar(&a.name, "name", "", "`NAME`: "+what) }
}

// onePos returns the single positional argument, path-escaped.
func onePos(a adminArgs) (string, bool) {
	if len(a.pos) != 1 || a.pos[0] == "" {
		return "", false
	}
	return url.PathEscape(a.pos[0]), true
}

// adminCommands are the sub-commands in the order the usage lists them.
var adminCommands = []adminCommand{
	{
		name: "sessions", synopsis: "--user USER", summary: "List a user's sessions (active and recently ended) with their participants.",
		examples: []string{"slobridge admin sessions --user alice@example.com"},
		flags:    userFlag,
		request: func(a adminArgs) (string, string, any, string) {
			if a.user == "" || len(a.pos) != 0 {
				return "", "", nil, "admin sessions needs --user USER"
			}
			return http.MethodGet, "/users/" + url.PathEscape(a.user) + "/sessions", nil, ""
		},
		table: sessionsTable,
	},
	{
		name: "logout", synopsis: "(--session SID | --user USER)", summary: "End one session, or every session of a user (log out everywhere).",
		examples: []string{"slobridge admin logout --user alice", "slobridge admin logout --session 3bf0c1..."},
		flags: func(fs *flag.FlagSet, a *adminArgs) {
			userFlag(fs, a)
			fs.StringVar(&a.session, "session", "", "the `SID` of one session")
		},
		request: func(a adminArgs) (string, string, any, string) {
			if (a.user == "") == (a.session == "") || len(a.pos) != 0 {
				return "", "", nil, "admin logout needs exactly one of --session SID and --user USER"
			}
			return http.MethodPost, "/logouts", adminapi.LogoutRequest{SessionID: a.session, UserID: a.user}, ""
		},
		table: logoutTable,
	},
	{
		name: "status", synopsis: "[LOGOUT_ID]", summary: "Show how a logout went, participant by participant; without an ID, list the recent logouts.",
		examples: []string{"slobridge admin status", "slobridge admin status --limit 50 --before 2026-11-30T12:00:00Z,lo7hq2", "slobridge admin status lo9xz1"},
		flags: func(fs *flag.FlagSet, a *adminArgs) {
			fs.IntVar(&a.limit, "limit", 20, "list `N` recent logouts (1-200), without LOGOUT_ID")
			fs.StringVar(&a.before, "before", "", "list the logouts before `TIME,ID` (the last line of the previous list says it)")
		},
		request: func(a adminArgs) (string, string, any, string) {
			if len(a.pos) == 0 {
				q := url.Values{"limit": {strconv.Itoa(a.limit)}}
				if a.before != "" {
					t, id, ok := strings.Cut(a.before, ",")
					if _, err := time.Parse(time.RFC3339Nano, t); !ok || err != nil || id == "" {
						return "", "", nil, "--before takes TIME,ID as the list's last line gives it"
					}
					q.Set("before_time", t)
					q.Set("before_id", id)
				}
				return http.MethodGet, "/logouts?" + q.Encode(), nil, ""
			}
			if a.before != "" {
				return "", "", nil, "--before lists logouts; it takes no LOGOUT_ID"
			}
			id, ok := onePos(a)
			if !ok {
				return "", "", nil, "admin status takes at most one LOGOUT_ID"
			}
			return http.MethodGet, "/logouts/" + id, nil, ""
		},
		table: statusTable,
	},
	{
		name: "retry", synopsis: "LOGOUT_ID", summary: "Send a logout's failed deliveries again, now.",
		examples: []string{"slobridge admin retry lo9xz1"},
		request: func(a adminArgs) (string, string, any, string) {
			id, ok := onePos(a)
			if !ok {
				return "", "", nil, "admin retry needs one LOGOUT_ID"
			}
			return http.MethodPost, "/logouts/" + id + "/retry", nil, ""
		},
		table: func(w io.Writer, b []byte) error {
			var r adminapi.RetryResponse
			if err := json.Unmarshal(b, &r); err != nil {
				return err
			}
			_, err := fmt.Fprintf(w, "%d failed deliveries of logout %s sent again (follow them with: slobridge admin status %s)\n", r.Reset, r.LogoutID, r.LogoutID)
			return err
		},
	},
	{
		name: "receivers", summary: "List the Shared Signals receivers (their push authorizations are never shown).",
		examples: []string{"slobridge admin receivers"},
		request: func(a adminArgs) (string, string, any, string) {
			if len(a.pos) != 0 {
				return "", "", nil, "admin receivers takes no arguments"
			}
			return http.MethodGet, "/receivers", nil, ""
		},
		table: receiversTable,
	},
	{
		name: "add-receiver", synopsis: "ID --push-url URL [--name N] [--authorization-file F]", summary: "Register or replace a Shared Signals receiver; it joins sessions created from then on.",
		examples: []string{"slobridge admin add-receiver orders-api --push-url https://orders.example.com/ssf/events --authorization-file ./push-auth"},
		flags: func(fs *flag.FlagSet, a *adminArgs) {
			fs.StringVar(&a.pushURL, "push-url", "", "the receiver's push `URL` (https)")
			nameFlag("display name")(fs, a)
			fs.StringVar(&a.authFile, "authorization-file", "", "`FILE` holding the Authorization header value of each push")
		},
		request: func(a adminArgs) (string, string, any, string) {
			id, ok := onePos(a)
			if !ok || a.pushURL == "" {
				return "", "", nil, "admin add-receiver needs one RECEIVER_ID and --push-url URL"
			}
			return http.MethodPut, "/receivers/" + id, map[string]any{"push_url": a.pushURL, "name": a.name}, ""
		},
		table: func(w io.Writer, b []byte) error {
			var r receiverRow
			if err := json.Unmarshal(b, &r); err != nil {
				return err
			}
			_, err := fmt.Fprintf(w, "receiver %s registered: pushes to %s\n", r.ID, r.PushURL)
			return err
		},
	},
	{
		name: "remove-receiver", synopsis: "ID", summary: "Remove a Shared Signals receiver.",
		examples: []string{"slobridge admin remove-receiver orders-api"},
		request: func(a adminArgs) (string, string, any, string) {
			id, ok := onePos(a)
			if !ok {
				return "", "", nil, "admin remove-receiver needs one RECEIVER_ID"
			}
			return http.MethodDelete, "/receivers/" + id, nil, ""
		},
	},
	{
		name: "register-sp", synopsis: "--metadata-url URL [--name N]", summary: "Register a SAML SP from its metadata URL (when the bridge is a SAML IdP).",
		examples: []string{"slobridge admin register-sp --metadata-url https://crm.example.com/saml/metadata --name CRM"},
		flags: func(fs *flag.FlagSet, a *adminArgs) {
			fs.StringVar(&a.metadataURL, "metadata-url", "", "the SP's metadata `URL`")
			nameFlag("display name on the logout page")(fs, a)
		},
		request: func(a adminArgs) (string, string, any, string) {
			if a.metadataURL == "" || len(a.pos) != 0 {
				return "", "", nil, "admin register-sp needs --metadata-url URL"
			}
			return http.MethodPost, "/saml/sps", map[string]any{"metadata_url": a.metadataURL, "name": a.name}, ""
		},
		table: func(w io.Writer, b []byte) error {
			var r struct {
				EntityID string `json:"entity_id"`
				Name     string `json:"name"`
				NameID   string `json:"name_id"`
			}
			if err := json.Unmarshal(b, &r); err != nil {
				return err
			}
			_, err := fmt.Fprintf(w, "SAML SP %s registered as %q (NameID: %s)\n", r.EntityID, r.Name, r.NameID)
			return err
		},
	},
	{
		name: "upstreams", summary: "List the upstream IdPs: available or why not, and what to register for the bridge there.",
		examples: []string{"slobridge admin upstreams"},
		request: func(a adminArgs) (string, string, any, string) {
			if len(a.pos) != 0 {
				return "", "", nil, "admin upstreams takes no arguments"
			}
			return http.MethodGet, "/upstreams", nil, ""
		},
		table: upstreamsTable,
	},
}

// findAdminCommand returns the named sub-command.
func findAdminCommand(name string) (adminCommand, bool) {
	for _, c := range adminCommands {
		if c.name == name {
			return c, true
		}
	}
	return adminCommand{}, false
}

// stamp formats a time for tables: UTC to the second, "-" when unset.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// table starts a tab-aligned table with a header row.
func table(w io.Writer, header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	return tw
}

// row writes one table row; empty cells read "-".
func row(tw *tabwriter.Writer, cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
		cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(cells[i])
	}
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
}

func sessionsTable(w io.Writer, b []byte) error {
	var s adminapi.Sessions
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	fmt.Fprintf(w, "sessions of %s\n\n", s.UserID)
	tw := table(w, "SESSION", "STATE", "UPSTREAM", "AUTHENTICATED", "ENDED", "PARTICIPANTS")
	for _, se := range s.Sessions {
		state := "active"
		if !se.Active {
			state = "ended"
			if se.EndedAt.IsZero() {
				state = "expired"
			}
		}
		var ps []string
		for _, p := range se.Participants {
			ps = append(ps, fmt.Sprintf("%s (%s, %s)", cmp.Or(p.Name, p.AppID), p.Kind, p.Channels))
		}
		row(tw, se.ID, state, se.Upstream, stamp(se.AuthTime), stamp(se.EndedAt), strings.Join(ps, ", "))
	}
	return tw.Flush()
}

func logoutTable(w io.Writer, b []byte) error {
	var r adminapi.LogoutResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "logout %s started: %d session(s), %d participant(s)\nfollow it with: slobridge admin status %s\n",
		r.Logout.ID, len(r.Logout.SessionIDs), len(r.Logout.Participants), r.Logout.ID)
	return err
}

// statusTable renders one logout's status or, for the list, the logouts.
func statusTable(w io.Writer, b []byte) error {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return err
	}
	if _, list := probe["logouts"]; list {
		return logoutsTable(w, b)
	}
	var s adminapi.Status
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	lo := s.Logout
	fmt.Fprintf(w, "logout %s of %s, started %s by %s\n", lo.ID, lo.UserID, stamp(lo.CreatedAt), initiator(lo.Initiator))
	fmt.Fprintf(w, "outcome: %s\n\n", outcomeWord(s.Done, s.Outcome.Complete, len(s.Outcome.Failed)))
	tw := table(w, "PARTICIPANT", "KIND", "CHANNEL", "STATE", "ATTEMPTS", "UPDATED", "LAST ERROR")
	for _, p := range s.Participants {
		row(tw, cmp.Or(p.Name, p.AppID), p.Kind, p.Channel, p.State, strconv.Itoa(p.Attempts), stamp(p.UpdatedAt), p.LastError)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, f := range s.Outcome.Failed {
		fmt.Fprintf(w, "not logged out: %s: %s\n", f.Key, f.Why)
	}
	return nil
}

func logoutsTable(w io.Writer, b []byte) error {
	var l adminapi.Logouts
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	tw := table(w, "LOGOUT", "STARTED", "USER", "BY", "SESSIONS", "PARTICIPANTS", "OUTCOME")
	for _, lo := range l.Logouts {
		row(tw, lo.ID, stamp(lo.CreatedAt), lo.UserID, initiator(lo.Initiator), strconv.Itoa(lo.Sessions),
			strconv.Itoa(lo.Participants), outcomeWord(lo.Done, lo.Complete, lo.Failed))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if l.Next != "" {
		if u, err := url.Parse(l.Next); err == nil {
			q := u.Query()
			fmt.Fprintf(w, "more: slobridge admin status --limit %s --before %s,%s\n", q.Get("limit"), q.Get("before_time"), q.Get("before_id"))
		}
	}
	return nil
}

// initiator names who started a logout.
func initiator(i store.Initiator) string {
	if i.ID == "" {
		return string(i.Kind)
	}
	return string(i.Kind) + " " + i.ID
}

// outcomeWord says how a logout went, from the outcome function's answer.
func outcomeWord(done, complete bool, failed int) string {
	switch {
	case complete:
		return "complete"
	case !done:
		return fmt.Sprintf("in progress (%d not confirmed yet)", failed)
	default:
		return fmt.Sprintf("partial (%d not logged out)", failed)
	}
}

// receiverRow is a receiver as the admin API lists it.
type receiverRow struct {
	ID               string   `json:"id"`
	Name             string   `json:"name"`
	PushURL          string   `json:"push_url"`
	Audience         []string `json:"audience"`
	HasAuthorization bool     `json:"has_authorization"`
}

func receiversTable(w io.Writer, b []byte) error {
	var l struct {
		Receivers []receiverRow `json:"receivers"`
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	tw := table(w, "RECEIVER", "NAME", "PUSH URL", "AUDIENCE", "AUTHORIZATION")
	for _, r := range l.Receivers {
		auth := "none"
		if r.HasAuthorization {
			auth = "set"
		}
		row(tw, r.ID, r.Name, r.PushURL, strings.Join(r.Audience, " "), auth)
	}
	return tw.Flush()
}

func upstreamsTable(w io.Writer, b []byte) error {
	var l adminapi.Upstreams
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	tw := table(w, "UPSTREAM", "TYPE", "STATE", "SOURCE")
	for _, u := range l.Upstreams {
		state := "available"
		if !u.Available {
			state = "unavailable: " + u.Error
		}
		row(tw, u.Name, u.Type, state, u.ID)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, u := range l.Upstreams {
		for _, w2 := range u.Warnings {
			fmt.Fprintf(w, "warning: %s: %s\n", u.Name, w2)
		}
	}
	for _, u := range l.Upstreams {
		if len(u.Register) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nregister the bridge at %s:\n", u.Name)
		rt := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, k := range slices.Sorted(maps.Keys(u.Register)) {
			fmt.Fprintf(rt, "  %s\t%s\n", k, u.Register[k])
		}
		if err := rt.Flush(); err != nil {
			return err
		}
	}
	return nil
}
