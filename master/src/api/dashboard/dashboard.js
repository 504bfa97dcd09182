// The dashboard's live parts (after the shared script: dfsPoll, dfsFill,
// dfsCell, dfsFmt, dfsBytes). Every value is written with textContent or
// as an attribute: names and addresses can never become markup.
function dashBar(used, total) {
  const bar = document.createElement('span'); bar.className = 'bar';
  const fill = document.createElement('span');
  fill.style.width = (total ? Math.min(100, used * 100 / total) : 0).toFixed(1) + '%';
  bar.appendChild(fill); return bar;
}
function dashLink(text, href) {
  const a = document.createElement('a'); a.textContent = text;
  if (/^https?:\/\//.test(href)) a.href = href;
  return a;
}
function dashNodes(rows) {
  const trs = rows.map(n => {
    const tr = document.createElement('tr'); tr.className = 'node';
    const id = document.createElement('code'); id.textContent = n.node_id; dfsCell(tr, '').appendChild(id);
    dfsCell(tr, '').appendChild(dashLink(n.address, n.address + '/'));
    dfsCell(tr, n.state, n.state);
    const cap = dfsCell(tr, ''); cap.appendChild(dashBar(n.used_bytes, n.capacity_bytes));
    cap.appendChild(document.createTextNode(dfsBytes(n.used_bytes) + ' of ' + dfsBytes(n.capacity_bytes)));
    dfsCell(tr, String(n.chunk_count), 'num');
    dfsCell(tr, dfsFmt(n.last_heartbeat_age_ms, 'age'), 'num');
    dfsCell(tr, dfsFmt(n.read_bytes_per_sec, 'rate'), 'num');
    dfsCell(tr, dfsFmt(n.write_bytes_per_sec, 'rate'), 'num');
    return tr;
  });
  document.getElementById('cs-rows').replaceChildren(...trs);
}
function dashUtc(ms) { return ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '—'; }
function dashWork(w) {
  dfsFill(document.getElementById('work'), w);
  const trs = w.scrub.map(r => {
    const tr = document.createElement('tr');
    dfsCell(tr, r.address);
    const p = dfsCell(tr, ''); p.appendChild(dashBar(r.pass_done, r.pass_total));
    p.appendChild(document.createTextNode(r.pass_done + ' of ' + r.pass_total));
    dfsCell(tr, String(r.passes_completed), 'num');
    dfsCell(tr, String(r.corrupt_found), 'num');
    dfsCell(tr, dashUtc(r.last_pass_completed_unix_ms));
    return tr;
  });
  document.getElementById('scrub-rows').replaceChildren(...trs);
}
function dashEvents(page) {
  const trs = page.events.map(e => {
    const tr = document.createElement('tr');
    dfsCell(tr, dashUtc(e.unix_ms)); dfsCell(tr, e.kind, e.kind); dfsCell(tr, e.message);
    return tr;
  });
  document.getElementById('event-rows').replaceChildren(...trs);
}
// Same geometry as charts.rs.
const DASH_W = 640, DASH_H = 170, DASH_LEFT = 70, DASH_BOTTOM = 20, DASH_TOP = 10, DASH_HOUR = 3600000;
function dashChart(id, samples, keys) {
  const svg = document.getElementById(id); if (!svg) return;
  const max = Math.max(0, ...samples.flatMap(s => keys.map(k => s[k])));
  const now = Date.now();
  keys.forEach((k, i) => {
    const pts = samples.map(s => {
      const x = DASH_LEFT + (DASH_W - DASH_LEFT) * (1 - Math.min(1, Math.max(0, now - s.unix_ms) / DASH_HOUR));
      const y = DASH_TOP + (DASH_H - DASH_BOTTOM - DASH_TOP) * (1 - (max > 0 ? s[k] / max : 0));
      return x.toFixed(1) + ',' + y.toFixed(1);
    });
    const line = svg.querySelector('.line' + i); if (line) line.setAttribute('points', pts.join(' '));
  });
  const label = svg.querySelector('.max'); if (label) label.textContent = dfsFmt(max, svg.dataset.format);
}
function dashCharts(h) {
  dashChart('chart-throughput', h.samples, ['read_bytes_per_sec', 'write_bytes_per_sec']);
  dashChart('chart-capacity', h.samples, ['used_bytes', 'capacity_bytes']);
}
// Polls only what the page shows, each at the URL its element names
// (data-src, written by the server from the endpoint declarations).
function dashStart() {
  const poll = (id, f) => { const e = document.getElementById(id); if (e != null) dfsPoll(e.dataset.src, f); };
  poll('overview', d => dfsFill(document.getElementById('overview'), d));
  poll('cs-rows', dashNodes);
  poll('work', dashWork);
  poll('event-rows', dashEvents);
  poll('history', dashCharts);
}
