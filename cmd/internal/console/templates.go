package console

// layoutTmpl is every page's frame: the navigation, the operator, the
// page's own style and, on a page that follows a running logout, a small
// script (both by nonce) that reloads it at each change the logout's
// event stream announces; without scripts the page reloads every two
// seconds.
const layoutTmpl = `
{{define "top"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>slobridge console</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
{{if .Refresh}}<noscript><meta http-equiv="refresh" content="2"></noscript>
<script nonce="{{.Nonce}}">
(function () {
  var reload = function () { location.reload(); };
  if (!window.EventSource) { setTimeout(reload, 2000); return; }
  var es = new EventSource({{.Live}});
  es.onmessage = function (e) { if (e.data !== {{.Sig}}) { es.close(); reload(); } };
  es.onerror = function () { es.close(); setTimeout(reload, 2000); };
})();
</script>{{end}}
<style nonce="{{.Nonce}}">
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
header{background:#1f2a37;color:#fff;padding:.6em 1.2em;display:flex;gap:1.4em;align-items:center}
header a{color:#cfe3ff;text-decoration:none}header .who{margin-left:auto;color:#9fb0c3}
main{padding:1em 1.4em;max-width:72em}
table{border-collapse:collapse;width:100%;background:#fff;margin:.6em 0 1.2em}
th,td{border-bottom:1px solid #e3e6ea;padding:.35em .6em;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}
.ok{color:#126b2f}.bad{color:#a3131d}.wait{color:#8a5a00}
.card{background:#fff;border:1px solid #e3e6ea;border-radius:6px;padding:.6em 1em;margin:.8em 0}
input[type=text],textarea{width:28em;max-width:100%;padding:.3em}
button,.button{background:#1f5fbf;color:#fff;border:0;border-radius:4px;padding:.4em .9em;text-decoration:none;cursor:pointer}
.danger{background:#a3131d}
code{background:#eef1f4;padding:0 .2em;word-break:break-all}
</style></head>
<body><header><strong>slobridge</strong>
<a href="{{.Base}}/">Sessions</a><a href="{{.Base}}/logouts">Logouts</a><a href="{{.Base}}/deliveries">Deliveries</a><a href="{{.Base}}/apps">Apps</a><a href="{{.Base}}/upstreams">Upstreams</a>
{{if .Operator}}<span class="who">operator <span id="operator">{{.Operator}}</span></span>{{end}}</header>
<main>{{end}}
{{define "bottom"}}</main></body></html>
{{end}}
{{define "participants"}}<table class="participants"><tr><th>App</th><th>Protocol</th><th>Channel</th><th>Joined</th></tr>
{{range .}}<tr><td class="app">{{if .Name}}{{.Name}}{{else}}{{.AppID}}{{end}}</td><td>{{.Kind}}</td><td>{{channel .Channels}}</td><td>{{stamp .JoinedAt}}</td></tr>
{{else}}<tr><td colspan="4">No app joined this session.</td></tr>{{end}}</table>{{end}}
`

// pagesTmpl are the pages.
const pagesTmpl = `
{{define "message"}}{{template "top" .}}<h1>{{.Data.Title}}</h1><p id="message">{{.Data.Message}}</p>{{template "bottom" .}}{{end}}

{{define "sessions"}}{{template "top" .}}{{with .Data}}
<h1>Sessions</h1>
<form method="get" action="" id="search"><label>Find by <select name="by">
<option value="user"{{if eq .By "user"}} selected{{end}}>user ID, email address or upstream NameID</option>
<option value="upstream"{{if eq .By "upstream"}} selected{{end}}>upstream</option>
<option value="app"{{if eq .By "app"}} selected{{end}}>app (client ID or SP entity ID)</option></select></label>
<input type="text" name="q" value="{{.Query}}" autofocus> <button type="submit">Find</button></form>
{{if .Searched}}
{{if .Sessions}}
{{if eq .By "user"}}<h2>Sessions of <span id="user">{{.UserID}}</span> ({{.Active}} active)</h2>
{{if .Active}}<p><a class="button danger" id="logout-user" href="{{$.Base}}/logout?user={{query .UserID}}">Log {{.UserID}} out everywhere</a></p>{{end}}
{{else}}<h2 id="listed">Sessions {{if eq .By "app"}}<code>{{.Query}}</code> joined{{else}}at <code>{{.Query}}</code>{{end}}, newest first ({{.Active}} of {{len .Sessions}} active)</h2>{{end}}
{{range .Sessions}}<div class="card session" data-session="{{.ID}}" data-state="{{.State}}">
<p><strong>Session <code>{{.ID}}</code></strong> of <strong class="session-user">{{.UserID}}</strong> — <span class="state {{if eq .State "active"}}ok{{else}}wait{{end}}">{{.State}}</span>
{{if eq .State "active"}} · <a href="{{$.Base}}/logout?session={{query .ID}}">log this session out</a>{{end}}
{{if .LogoutID}} · ended by <a href="{{$.Base}}/logouts/{{.LogoutID}}">logout {{.LogoutID}}</a>{{end}}</p>
<p>Upstream <strong>{{if .Upstream}}{{.Upstream}}{{else}}—{{end}}</strong>{{if .NameID.Value}}, NameID <code class="nameid">{{.NameID.Value}}</code>{{end}};
authenticated {{stamp .AuthTime}}{{if .Attributes.amr}} by {{range .Attributes.amr}}{{.}} {{end}}{{end}}; expires {{stamp .ExpiresAt}}{{if not .EndedAt.IsZero}}; ended {{stamp .EndedAt}}{{end}}</p>
{{if .Attributes}}<p class="attrs">{{range $k, $v := .Attributes}}<span>{{$k}}: {{range $v}}<code>{{.}}</code> {{end}}</span> {{end}}</p>{{end}}
{{template "participants" .Participants}}</div>{{end}}
{{if .Next}}<p><a id="older" href="{{.Next}}">Older sessions</a></p>{{end}}
{{else}}<p id="none">No sessions found for <code>{{.Query}}</code>.</p>{{end}}
{{end}}{{end}}{{template "bottom" .}}{{end}}

{{define "confirm"}}{{template "top" .}}{{with .Data}}
<h1>Log out {{if .UserID}}<span id="target">{{.UserID}}</span> everywhere{{else}}session <code id="target">{{.SessionID}}</code>{{end}}?</h1>
<p>This ends {{len .Sessions}} active session(s); every app below is told, and the tokens issued in them stop working.</p>
{{range .Sessions}}<div class="card"><p>Session <code>{{.ID}}</code> of <strong>{{.UserID}}</strong> at {{if .Upstream}}{{.Upstream}}{{else}}—{{end}}</p>{{template "participants" .Participants}}</div>{{end}}
<form method="post" action="{{$.Base}}/logout"><input type="hidden" name="csrf" value="{{$.CSRF}}">
{{if .UserID}}<input type="hidden" name="user" value="{{.UserID}}">{{else}}<input type="hidden" name="session" value="{{.SessionID}}">{{end}}
<p><label>Reason (written to the audit log)<br><textarea name="reason" rows="2" required></textarea></label></p>
<p><button type="submit" class="danger" id="confirm">Log out</button> <a href="{{$.Base}}/">Cancel</a></p></form>
{{end}}{{template "bottom" .}}{{end}}

{{define "logouts"}}{{template "top" .}}{{with .Data}}
<h1>Logouts</h1>
<table id="logouts"><tr><th>Logout</th><th>Started</th><th>User</th><th>Started by</th><th>Sessions</th><th>Outcome</th></tr>
{{range .Logouts}}<tr data-logout="{{.ID}}"><td><a href="{{$.Base}}/logouts/{{.ID}}">{{.ID}}</a></td><td>{{stamp .CreatedAt}}</td><td>{{.UserID}}</td>
<td>{{.Initiator.Kind}}{{if .Initiator.ID}} {{.Initiator.ID}}{{end}}</td><td>{{len .SessionIDs}}</td>
<td class="outcome">{{if .Outcome.Complete}}<span class="ok">complete</span>{{else if .Outcome.Status.Done}}<span class="bad">partial: {{len .Outcome.Failed}} not logged out</span>{{else}}<span class="wait">in progress</span>{{end}}</td></tr>
{{else}}<tr><td colspan="6">No logouts yet.</td></tr>{{end}}</table>
{{if .Next}}<p><a id="older" href="{{.Next}}">Older logouts</a></p>{{end}}
{{end}}{{template "bottom" .}}{{end}}

{{define "status"}}{{template "top" .}}{{with .Data}}{{with .Outcome.Status}}
<h1>Logout <code id="logout-id">{{.Logout.ID}}</code></h1>
<p>Of <strong>{{.Logout.UserID}}</strong>, started {{stamp .Logout.CreatedAt}} by {{.Logout.Initiator.Kind}}{{if .Logout.Initiator.ID}} {{.Logout.Initiator.ID}}{{end}}; {{len .Logout.SessionIDs}} session(s).</p>{{end}}
<p id="summary" class="{{if .Outcome.Complete}}ok{{else if .Outcome.Status.Done}}bad{{else}}wait{{end}}">{{if .Outcome.Complete}}Complete: every participant confirmed the logout.{{else if .Outcome.Status.Done}}Partial: {{len .Outcome.Failed}} leg(s) not logged out.{{else}}In progress; this page reloads itself.{{end}}</p>
<table id="participants"><tr><th>Participant</th><th>Protocol</th><th>Channel</th><th>State</th><th>Attempts</th><th>Last change</th><th>Last error</th><th>Delivery</th></tr>
{{range .Outcome.Status.Participants}}<tr data-state="{{.State}}" data-key="{{.Key}}"><td class="name">{{if .Name}}{{.Name}}{{else}}{{.AppID}}{{end}}</td><td>{{.Kind}}</td><td>{{.Channel}}</td>
<td class="state">{{.State}}</td><td>{{.Attempts}}</td><td>{{stamp .UpdatedAt}}</td><td class="error">{{.LastError}}</td><td>{{if .DeliveryID}}<a class="delivery" href="{{$.Base}}/deliveries/{{.DeliveryID}}"><code>{{.DeliveryID}}</code></a>{{end}}</td></tr>{{end}}</table>
{{range .Outcome.Failed}}<p class="bad failed-leg">Not logged out: {{.Key}}: {{.Why}}</p>{{end}}
{{if .Retryable}}<form method="post" action="{{$.Base}}/logouts/{{.Outcome.Status.Logout.ID}}/retry"><input type="hidden" name="csrf" value="{{$.CSRF}}">
<button type="submit" id="retry">Retry the failed deliveries now</button></form>{{end}}
{{end}}{{template "bottom" .}}{{end}}

{{define "deliveries"}}{{template "top" .}}{{with .Data}}
<h1>Deliveries failing now</h1>
<p id="totals">{{.Retrying}} retrying, {{.Failed}} given up{{if lt .Listed (add .Retrying .Failed)}}; grouped below: the newest {{.Listed}}{{end}}.</p>
<table id="hosts"><tr><th>Receiver host</th><th>Retrying</th><th>Given up</th><th>Last attempt</th><th>Last error</th><th>Newest deliveries</th></tr>
{{range .Hosts}}<tr data-host="{{.Host}}"><td><code>{{.Host}}</code></td><td class="retrying">{{.Retrying}}</td><td class="failed">{{.Failed}}</td><td>{{stamp .LastAt}}</td>
<td class="error">{{.LastError}}</td><td>{{range .Deliveries}}<a class="delivery" href="{{$.Base}}/deliveries/{{.ID}}">{{if .Participant.Name}}{{.Participant.Name}}{{else}}{{.Participant.AppID}}{{end}}</a> ({{.State}}) {{end}}</td></tr>
{{else}}<tr><td colspan="6" id="none">Nothing is failing.</td></tr>{{end}}</table>
{{if .Next}}<p><a id="older" href="{{.Next}}">Older failures</a></p>{{end}}
{{end}}{{template "bottom" .}}{{end}}

{{define "delivery"}}{{template "top" .}}{{with .Data}}
<h1>Delivery <code id="delivery-id">{{.ID}}</code></h1>
<p>To <strong class="name">{{if .Participant.Name}}{{.Participant.Name}}{{else}}{{.Participant.AppID}}{{end}}</strong> ({{.Participant.Kind}}, <code>{{.Participant.AppID}}</code>)
at <code>{{.Participant.BackChannelURL}}</code>, for <a href="{{$.Base}}/logouts/{{.LogoutID}}">logout {{.LogoutID}}</a>; created {{stamp .CreatedAt}}.</p>
<p>State <strong id="state" class="{{if eq .State "delivered"}}ok{{else if eq .State "failed"}}bad{{else}}wait{{end}}">{{.State}}</strong>{{if not .DoneAt.IsZero}} since {{stamp .DoneAt}}{{end}}{{if not .NextAttemptAt.IsZero}}; next attempt {{stamp .NextAttemptAt}}{{end}}{{if .LeaseOwner}}; being sent by {{.LeaseOwner}}{{end}}.</p>
<table id="attempts"><tr><th>#</th><th>At</th><th>Took</th><th>Result</th><th>HTTP status</th><th>Error</th><th>Next attempt</th></tr>
{{range $i, $a := .Attempts}}<tr class="attempt" data-ok="{{$a.OK}}"><td>{{add $i 1}}</td><td>{{stamp $a.At}}</td><td>{{ms $a.Duration}} ms</td><td>{{if $a.OK}}<span class="ok">delivered</span>{{else}}<span class="bad">failed</span>{{end}}</td>
<td>{{if $a.StatusCode}}{{$a.StatusCode}}{{else}}—{{end}}</td><td class="error">{{$a.Error}}</td><td>{{stamp $a.Next}}</td></tr>
{{else}}<tr><td colspan="7">Not tried yet.</td></tr>{{end}}</table>
{{if .Retryable}}<form method="post" action="{{$.Base}}/deliveries/{{.ID}}/retry"><input type="hidden" name="csrf" value="{{$.CSRF}}">
<button type="submit" id="retry-delivery">Retry now</button></form>{{end}}
{{end}}{{template "bottom" .}}{{end}}

{{define "apps"}}{{template "top" .}}{{with .Data}}
<h1>Apps</h1>
<p id="count">{{.Total}} app(s){{if or (ge .Prev 0) (ge .Next 0)}}; {{add .From 1}} to {{add .From (len .Apps)}} below{{end}}.</p>
<table id="apps"><tr><th>App</th><th>Protocol</th><th>ID</th><th>Logout channels</th><th>Back channel</th><th>Front channel</th><th>State</th></tr>
{{range .Apps}}<tr data-app="{{.ID}}"><td class="name">{{.Name}}</td><td>{{.Kind}}</td><td><code>{{.ID}}</code></td><td class="channels">{{.Channels}}</td>
<td>{{if .BackChannel}}<code>{{.BackChannel}}</code>{{end}}</td><td>{{if .FrontChannel}}<code>{{.FrontChannel}}</code>{{end}}</td>
<td class="state">{{if .Disabled}}<span class="bad">disabled</span>{{else}}<span class="ok">enabled</span>{{end}}{{if .Static}} (configuration file){{else if $.Data.Actions}}
<form method="post" action="{{$.Base}}/apps/disable"><input type="hidden" name="csrf" value="{{$.CSRF}}"><input type="hidden" name="kind" value="{{.Kind}}"><input type="hidden" name="id" value="{{.ID}}">
<input type="hidden" name="disabled" value="{{not .Disabled}}"><button type="submit" class="{{if not .Disabled}}danger {{end}}toggle">{{if .Disabled}}Enable{{else}}Disable{{end}}</button></form>{{end}}</td></tr>
{{else}}<tr><td colspan="7">No apps are registered.</td></tr>{{end}}</table>
<p>{{if ge .Prev 0}}<a id="prev" href="{{$.Base}}/apps?from={{.Prev}}">Previous apps</a> {{end}}{{if ge .Next 0}}<a id="next" href="{{$.Base}}/apps?from={{.Next}}">More apps</a>{{end}}</p>
{{if .Actions}}
<div class="card"><h2>Register a SAML service provider</h2>
<form method="post" action="{{$.Base}}/apps/saml" id="register-saml"><input type="hidden" name="csrf" value="{{$.CSRF}}">
<p><label>Name<br><input type="text" name="name"></label></p>
<p><label>Metadata URL<br><input type="text" name="metadata_url" placeholder="https://app.example.com/saml/metadata"></label></p>
<p><label>or its metadata (an EntityDescriptor)<br><textarea name="metadata" rows="5"></textarea></label></p>
<p><button type="submit">Register the SP</button></p></form></div>
<div class="card"><h2>Register an OpenID Connect client</h2>
<form method="post" action="{{$.Base}}/apps/oidc" id="register-oidc"><input type="hidden" name="csrf" value="{{$.CSRF}}">
<p><label>Name<br><input type="text" name="name" required></label></p>
<p><label>Redirect URIs (one per line, matched exactly)<br><textarea name="redirect_uris" rows="2" required></textarea></label></p>
<p><label>Back-channel logout URI<br><input type="text" name="backchannel_logout_uri"></label></p>
<p><label>Front-channel logout URI<br><input type="text" name="frontchannel_logout_uri"></label></p>
<p><label>Post-logout redirect URIs (one per line)<br><textarea name="post_logout_redirect_uris" rows="2"></textarea></label></p>
<p><label><input type="checkbox" name="public"> Public client (no secret; PKCE)</label></p>
<p><button type="submit">Register the client</button></p></form></div>
{{end}}
{{end}}{{template "bottom" .}}{{end}}

{{define "registered"}}{{template "top" .}}{{with .Data}}
<h1>Registered <span id="registered-name">{{.App.Name}}</span></h1>
<p>{{.App.Kind}} app <code id="registered-id">{{.App.ID}}</code>, logout channels <strong>{{.App.Channels}}</strong>{{if .App.BackChannel}}, back channel <code>{{.App.BackChannel}}</code>{{end}}{{if .App.FrontChannel}}, front channel <code>{{.App.FrontChannel}}</code>{{end}}.</p>
{{if .Secret}}<p class="card">Client secret, shown this once (only its hash is kept): <code id="secret">{{.Secret}}</code></p>{{end}}
<p><a href="{{$.Base}}/apps">Back to the apps</a></p>
{{end}}{{template "bottom" .}}{{end}}

{{define "upstreams"}}{{template "top" .}}
<h1>Upstreams</h1>
<table id="upstreams"><tr><th>Upstream</th><th>Type</th><th>State</th><th>Source</th><th>Metadata read</th><th>Certificate expires</th><th>Register at it</th></tr>
{{range .Data}}<tr data-upstream="{{.Name}}"><td>{{.Name}}</td><td>{{.Type}}</td><td class="state">{{if .Available}}<span class="ok">available</span>{{else}}<span class="bad">unavailable: {{.Error}}</span>{{end}}
{{range .Warnings}}<br><span class="wait warning">{{.}}</span>{{end}}</td>
<td>{{source .ID}}</td><td>{{stamp .MetadataLoadedAt}}</td><td>{{stamp .CertificateNotAfter}}</td><td>{{range $k, $v := .Register}}{{$k}}: <code>{{$v}}</code><br>{{end}}</td></tr>{{end}}</table>
{{template "bottom" .}}{{end}}
`
