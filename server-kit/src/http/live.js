// Live updates shared by the daemons' pages. Data only ever reaches the
// page through textContent and attributes, never innerHTML: a name that
// looks like markup stays text.
function dfsGet(o, k) { return k.split('.').reduce((a, p) => (a == null ? a : a[p]), o); }
function dfsBytes(n) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']; let i = 0; let v = Number(n);
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return i === 0 ? v + ' B' : v.toFixed(1) + ' ' + u[i];
}
function dfsFmt(v, f) {
  if (v == null) return '—';
  switch (f) {
    case 'bytes': return dfsBytes(v);
    case 'rate': return dfsBytes(Math.round(v)) + '/s';
    case 'age': return (v / 1000).toFixed(1) + ' s';
    case 'onoff': return v ? 'ON' : 'off';
    case 'time': return v ? new Date(v).toLocaleString() : '—';
    case 'nodes': return v.live + ' live / ' + v.total + ' chunkservers';
    default: return String(v);
  }
}
// Fills every [data-k] (a key path into data, formatted by data-f) and
// every [data-bar="used/total"] under root.
function dfsFill(root, data) {
  root.querySelectorAll('[data-k]').forEach(e => { e.textContent = dfsFmt(dfsGet(data, e.dataset.k), e.dataset.f); });
  root.querySelectorAll('[data-bar]').forEach(e => {
    const [u, t] = e.dataset.bar.split('/'); const a = dfsGet(data, u), b = dfsGet(data, t);
    if (a != null && b) e.style.width = Math.min(100, a * 100 / b).toFixed(1) + '%';
  });
}
// A table cell with text and an optional class.
function dfsCell(tr, text, cls) {
  const td = document.createElement('td'); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td); return td;
}
// Calls fn with the JSON at url now and every 2 s.
function dfsPoll(url, fn) {
  const tick = () => fetch(url, { cache: 'no-store' }).then(r => (r.ok ? r.json() : null)).then(d => { if (d) fn(d); }).catch(() => {});
  tick(); setInterval(tick, 2000);
}
