package slobridge

import "html/template"

// logoutPageTmpl is the live logout status page. Everything it needs is
// inline under the CSP nonce: no external stylesheet, font or script. The
// script is an enhancement: the rows, the iframes and the links work
// without it, and a <noscript> refresh moves a script-less browser on.
var logoutPageTmpl = template.Must(template.New("logout").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
{{if .RefreshURL}}<noscript><meta http-equiv="refresh" content="{{.Refresh}};url={{.RefreshURL}}"></noscript>{{end}}
<style nonce="{{.Nonce}}">
:root{color-scheme:light;--ink:#1d2430;--muted:#5b6677;--line:#dde3ea;--bg:#f5f7fa;--card:#fff}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg)}
main{max-width:920px;margin:40px auto;padding:0 20px}
h1{font-size:24px;margin:0 0 6px}
.summary{margin:0 0 20px;color:var(--muted)}
.summary.ok{color:#11643a}
.summary.bad{color:#9a2b12}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;overflow:hidden}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:10px 14px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);background:#fafbfc}
tr:last-child td{border-bottom:0}
tr.upstream td{background:#fafbfc}
.state{display:inline-block;min-width:76px;text-align:center;padding:2px 10px;border-radius:999px;font-size:13px;font-weight:600}
.s-pending{background:#eef1f5;color:#445066}
.s-done{background:#dff4e7;color:#11643a}
.s-sent{background:#e3eefc;color:#1e4f95}
.s-retrying{background:#fff1d6;color:#8a5a00}
.s-failed{background:#fde2dc;color:#9a2b12}
.s-skipped{background:#eef1f5;color:#5b6677}
.detail{color:var(--muted);font-size:13px}
.error{display:block;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;color:#9a2b12;word-break:break-word}
.actions{margin-top:20px}
.button{display:inline-block;padding:9px 18px;border-radius:8px;background:#1f5fbf;color:#fff;text-decoration:none;font-weight:600}
iframe.fc{display:none}
</style>
</head>
<body data-continue="{{.Continue}}" data-events="{{.Events}}" data-front-wait="{{.FrontWaitMS}}" data-back-wait="{{.BackWaitMS}}"{{if .Live}} data-live{{end}}>
<main>
<h1>{{.Title}}</h1>
<p id="summary" class="summary {{.SummaryClass}}">{{.Summary}}</p>
<div class="card"><table>
<thead><tr><th>Application</th><th>Protocol</th><th>Channel</th><th>State</th><th>Details</th></tr></thead>
<tbody>
{{range .View.Rows}}{{template "row" .}}{{end}}
{{with .View.Upstream}}{{template "row" .}}{{end}}
</tbody></table></div>
{{if not .Finished}}<p class="actions"><a id="continue" class="button" href="{{.Continue}}">Continue</a></p>{{end}}
</main>
{{range .Frames}}<iframe class="fc" data-row="{{.Row}}" title="Logout of {{.Name}}" src="{{.URL}}"></iframe>
{{end}}{{if .Live}}<script nonce="{{.Nonce}}">
(function () {
  "use strict";
  var body = document.body;
  var next = body.getAttribute("data-continue");
  var frontWait = Number(body.getAttribute("data-front-wait"));
  var backWait = Number(body.getAttribute("data-back-wait"));
  var frameState = {}, framesLeft = 0, view = null, gone = false, timedOut = false, es = null;

  function setRow(r) {
    var tr = document.getElementById("row-" + r.id);
    if (!tr) { return; }
    var state = r.state, detail = r.detail || "";
    if (r.frame && frameState[r.id]) {
      state = frameState[r.id];
      detail = state === "done" ? "your browser delivered the logout" : "your browser sent the logout; the app did not answer in time";
    }
    tr.setAttribute("data-state", state);
    var badge = tr.querySelector(".state");
    badge.textContent = state;
    badge.className = "state s-" + state;
    tr.querySelector(".detail").textContent = detail;
    tr.querySelector(".error").textContent = r.error || "";
  }

  function problems() {
    var n = 0;
    document.querySelectorAll("tr[data-state]").forEach(function (tr) {
      var s = tr.getAttribute("data-state");
      if (s === "failed" || s === "retrying") { n++; }
    });
    return n;
  }

  function summary(text, cls) {
    var p = document.getElementById("summary");
    p.textContent = text;
    p.className = "summary " + cls;
  }

  function check() {
    if (gone || !view) { return; }
    var n = problems();
    if (view.done && framesLeft === 0) {
      if (es) { es.close(); }
      if (n === 0) {
        gone = true;
        summary("Every application was told that you logged out. Continuing\u2026", "ok");
        setTimeout(function () { window.location.replace(next); }, 1000);
      } else {
        summary(n + " application(s) could not be told: you may still be logged in there. You can continue.", "bad");
      }
    } else if (timedOut) {
      if (es) { es.close(); }
      summary(n > 0 ? n + " application(s) could not be told yet: you may still be logged in there. The bridge keeps retrying in the background; you can continue." :
        "Some applications have not answered yet; the bridge keeps trying in the background. You can continue.", "bad");
    }
  }

  function render() {
    if (!view) { return; }
    view.rows.forEach(setRow);
    if (view.upstream) { setRow(view.upstream); }
    check();
  }

  document.querySelectorAll("iframe[data-row]").forEach(function (f) {
    var id = f.getAttribute("data-row");
    framesLeft++;
    f.addEventListener("load", function () {
      if (frameState[id]) { return; }
      frameState[id] = "done";
      framesLeft--;
      render();
    });
  });
  setTimeout(function () {
    document.querySelectorAll("iframe[data-row]").forEach(function (f) {
      var id = f.getAttribute("data-row");
      if (!frameState[id]) { frameState[id] = "sent"; framesLeft--; }
    });
    render();
  }, frontWait);
  setTimeout(function () { timedOut = true; check(); }, backWait);

  es = new EventSource(body.getAttribute("data-events"));
  es.onmessage = function (e) {
    try { view = JSON.parse(e.data); } catch (err) { return; }
    render();
  };
})();
</script>{{end}}
</body></html>
{{define "row"}}<tr id="row-{{.ID}}" class="{{if eq .ID "upstream"}}upstream{{end}}" data-state="{{.State}}">
<td>{{.Name}}</td><td>{{.Protocol}}</td><td>{{.Channel}}</td>
<td><span class="state s-{{.State}}">{{.State}}</span></td>
<td><span class="detail">{{.Detail}}</span><span class="error">{{.Error}}</span></td></tr>
{{end}}`))
