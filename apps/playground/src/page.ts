/** The single page: it polls the JSON endpoints, so it shows live figures without a framework. */
export const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Redis Patterns playground</title>
<style>
  body { font: 15px/1.5 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #1d1d1f; }
  h1 { font-size: 1.5rem; } section { border: 1px solid #ddd; border-radius: 8px; padding: 1rem; margin: 1rem 0; }
  dl { display: grid; grid-template-columns: 12rem 1fr; gap: .25rem 1rem; margin: 0; } dt { color: #666; }
  pre { background: #f6f6f6; padding: .5rem; max-height: 14rem; overflow: auto; } pre:empty { display: none; } small { color: #666; font-weight: normal; }
  .ok { color: #0a7d2c; font-weight: 600; } .bad { color: #b00020; font-weight: 600; } li { color: #8a5a00; }
</style>
</head>
<body>
<h1>Redis Patterns playground</h1>
<p>Connected to <code id="target">…</code></p>
<section><h2>Health</h2><dl id="health"></dl></section>
<section><h2>Memory</h2><dl id="memory"></dl><ul id="warnings"></ul></section>
<section><h2>Rate limit <small>@rp/ratelimit · GCRA, 5 per 10 s</small></h2>
  <button id="rl">Send a request</button><pre id="rl-out"></pre></section>
<section><h2>Lock <small>@rp/lock · held 1 s; click several times</small></h2>
  <button id="lk">Take the lock</button><pre id="lk-out"></pre></section>
<section><h2>Cache <small>@rp/cache · 500 ms query, fresh 15 s, grace 60 s</small></h2>
  <button id="ch">Read through the cache</button><pre id="ch-out"></pre></section>
<script>
const fmt = (v) => typeof v === 'number' ? (Number.isInteger(v) ? v.toLocaleString() : v.toFixed(2)) : String(v);
function fill(id, obj) {
  document.getElementById(id).innerHTML = Object.entries(obj)
    .filter(([k]) => k !== 'warnings')
    .map(([k, v]) => '<dt>' + k + '</dt><dd' + (k === 'ok' ? ' class="' + (v ? 'ok' : 'bad') + '"' : '') + '>' + fmt(v) + '</dd>')
    .join('');
}
async function refresh() {
  try {
    const [health, memory] = await Promise.all([fetch('/api/health').then(r => r.json()), fetch('/api/memory').then(r => r.json())]);
    document.getElementById('target').textContent = health.target;
    fill('health', health.report);
    fill('memory', memory.report ?? { error: memory.error });
    document.getElementById('warnings').innerHTML = (memory.report?.warnings ?? []).map(w => '<li>' + w + '</li>').join('');
  } catch (e) { document.getElementById('target').textContent = 'playground unreachable: ' + e.message; }
}
refresh(); setInterval(refresh, 2000);
function demo(id, method, path) {
  document.getElementById(id).onclick = async () => {
    const out = document.getElementById(id + '-out');
    const started = performance.now();
    const res = await fetch(path, { method });
    out.textContent = res.status + ' in ' + Math.round(performance.now() - started) + ' ms\\n' + JSON.stringify(await res.json(), null, 2);
  };
}
demo('rl', 'POST', '/api/ratelimit'); demo('lk', 'POST', '/api/lock'); demo('ch', 'GET', '/api/cache');
</script>
</body>
</html>`
