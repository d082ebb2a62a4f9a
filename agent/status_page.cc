#include "agent/status_page.h"

namespace civishare {

const std::string& status_page_html() {
  static const std::string html = R"html(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>CiviShare status</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
 h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.5em; }
 table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .3em .6em; text-align: left; }
 .ok { color: #176317; } .bad { color: #b00020; font-weight: bold; }
 #lag { border: 1px solid #ccc; background: #fafafa; }
 ul { padding-left: 1.2em; }
</style>
</head>
<body>
<h1>CiviShare node <span id="node">…</span></h1>
<p id="health">loading…</p>
<p>Capture <span id="source"></span>, cursor <code id="cursor"></code>, <span id="lag-now"></span> s behind.
 Inbox: <span id="inbox"></span> waiting. Applied <span id="applied"></span>, unchanged <span id="unchanged"></span>,
 refused <span id="refused"></span>, loops dropped <span id="loops"></span>.</p>
<h2>Links</h2>
<table id="peers"><thead><tr><th>peer</th><th>sends</th><th>receives</th><th>queued</th><th>oldest (s)</th><th>last success</th><th>last error</th></tr></thead><tbody></tbody></table>
<h2>Capture lag, last hour</h2>
<svg id="lag" width="600" height="120" viewBox="0 0 600 120"><polyline id="lagline" fill="none" stroke="#2a6" stroke-width="2" points=""/></svg>
<h2>Recent problems</h2>
<ul id="problems"></ul>
<script>
function text(id, v) { document.getElementById(id).textContent = v; }
function cell(row, v) { const td = document.createElement('td'); td.textContent = v; row.appendChild(td); return td; }
async function refresh() {
  let s;
  try { s = await (await fetch('/status.json')).json(); }
  catch (e) { text('health', 'agent not reachable: ' + e); return; }
  text('node', s.node); text('source', s.capture_source); text('cursor', s.cursor);
  text('lag-now', s.capture_lag_s ?? '?'); text('inbox', s.inbox);
  text('applied', s.applied ?? '?'); text('unchanged', s.unchanged ?? '?');
  text('refused', s.refused ?? '?'); text('loops', s.loops_dropped ?? '?');
  const h = document.getElementById('health');
  h.className = s.health.length ? 'bad' : 'ok';
  h.textContent = s.health.length ? 'Problems: ' + s.health.join(' | ') : 'All components working.';
  const body = document.querySelector('#peers tbody'); body.innerHTML = '';
  for (const p of s.peers) {
    const r = document.createElement('tr'); r.className = 'peer'; r.dataset.peer = p.name;
    cell(r, p.name); cell(r, p.sends.join(', ') || 'nothing'); cell(r, p.receives.join(', ') || 'nothing');
    cell(r, p.queued).className = 'queued'; cell(r, p.oldest_queued_age_s);
    cell(r, p.last_success_at ?? 'never'); cell(r, p.last_error ?? '').className = p.last_error ? 'bad' : '';
    body.appendChild(r);
  }
  const pts = s.lag_history || [];
  const max = Math.max(1, ...pts.map(p => p[1]));
  const now = Date.now() / 1000;
  document.getElementById('lagline').setAttribute('points',
    pts.map(p => ((600 * (1 - (now - p[0]) / 3600)).toFixed(1)) + ',' + (115 - 110 * p[1] / max).toFixed(1)).join(' '));
  const ul = document.getElementById('problems'); ul.innerHTML = '';
  for (const line of (s.recent_problems || []).slice().reverse()) {
    const li = document.createElement('li'); li.textContent = line; ul.appendChild(li);
  }
  if (!(s.recent_problems || []).length) { const li = document.createElement('li'); li.textContent = 'none'; ul.appendChild(li); }
}
refresh(); setInterval(refresh, 5000);
</script>
</body>
</html>
)html";
  return html;
}

}  // namespace civishare
