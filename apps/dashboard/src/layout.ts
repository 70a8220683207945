import { html, raw, type SafeHtml } from './html';

export interface PageOptions {
  title: string;
  /** Nonce of the page's inline script (the Content-Security-Policy allows only it). */
  nonce: string;
  readOnly: boolean;
  /** Text of the lookup box. */
  query?: string;
  /** A one-line message at the top (after cancel or retry). */
  notice?: { kind: 'ok' | 'error'; text: string };
  body: SafeHtml;
  script?: SafeHtml;
}

const CSS = `
:root { --bg:#f6f7f9; --card:#fff; --ink:#1d2330; --muted:#667085; --line:#e3e6eb; --blue:#3b6fe0; --green:#1f9254; --red:#c8372d; --orange:#c86a12; --purple:#7a4fd0; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color:var(--ink); background:var(--bg); }
header { display:flex; align-items:center; gap:18px; padding:10px 24px; background:#1d2330; color:#fff; }
header a { color:#cfd6e4; text-decoration:none; } header a:hover { color:#fff; }
header .brand { font-weight:700; color:#fff; font-size:16px; letter-spacing:.3px; }
header form { margin-left:auto; display:flex; gap:6px; }
header input { width:340px; padding:5px 8px; border-radius:4px; border:1px solid #3a4256; background:#2a3142; color:#fff; }
main { max-width:1180px; margin:0 auto; padding:20px 24px 48px; }
h1 { font-size:20px; margin:4px 0 14px; display:flex; align-items:center; gap:10px; flex-wrap:wrap; }
h1 .mono { font-size:20px; } h1 button { font-size:14px; font-weight:500; } h1 .badge { font-size:12px; }
h2 { font-size:15px; margin:0 0 10px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:16px 18px; margin-bottom:16px; }
.grid { display:grid; grid-template-columns: 1fr 1fr; gap:16px; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:600; font-size:12px; text-transform:uppercase; letter-spacing:.4px; }
td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; }
dl { display:grid; grid-template-columns: 150px 1fr; gap:6px 12px; margin:0; }
dt { color:var(--muted); } dd { margin:0; word-break:break-word; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size:12.5px; }
a { color:var(--blue); }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; color:#fff; background:var(--muted); }
.badge.running { background:var(--blue); } .badge.finishing { background:var(--purple); } .badge.done, .badge.ok { background:var(--green); }
.badge.failed { background:var(--red); } .badge.cancelled { background:var(--orange); } .badge.pending { background:#8a93a6; }
.bar { height:10px; border-radius:5px; background:#e8ebf0; overflow:hidden; min-width:120px; display:flex; }
.bar .ok { background:var(--green); } .bar .failed { background:var(--red); } .bar .cancelled { background:var(--orange); }
.legend { display:flex; gap:14px; font-size:12px; margin-top:6px; } .legend i { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:5px; vertical-align:-1px; }
.legend i.ok { background:var(--green); } .legend i.failed { background:var(--red); } .legend i.cancelled { background:var(--orange); } .legend i.pending { background:#e8ebf0; border:1px solid #c9ced8; }
.big { font-size:18px; font-weight:600; font-variant-numeric: tabular-nums; }
.muted { color:var(--muted); }
.stats { display:flex; gap:28px; flex-wrap:wrap; margin:12px 0 4px; } .stats div span { display:block; color:var(--muted); font-size:12px; }
.actions { display:flex; gap:8px; margin-left:auto; }
button { font:inherit; padding:5px 12px; border-radius:5px; border:1px solid var(--line); background:#fff; cursor:pointer; }
button.danger { border-color:#e7b4af; color:var(--red); } button.primary { background:var(--blue); border-color:var(--blue); color:#fff; }
button:disabled { opacity:.5; cursor:not-allowed; }
.notice { padding:8px 12px; border-radius:6px; margin-bottom:14px; } .notice.ok { background:#e5f5ec; } .notice.error { background:#fbe9e7; }
.error { color:var(--red); } .warning { color:var(--orange); }
.montage { max-width:100%; border-radius:6px; border:1px solid var(--line); background:#181818; }
.tabs a { margin-right:10px; } .tabs a.active { font-weight:700; color:var(--ink); text-decoration:none; }
svg.chart { max-width:100%; height:auto; }
`;

/** The page shell: header with navigation and lookup, styles, the body and an inline script. */
export function page(options: PageOptions): SafeHtml {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${options.title} · layertap</title>
<style>${raw(CSS)}</style>
</head>
<body>
<header>
  <a class="brand" href="/">layertap</a>
  <a href="/">Datasets</a>
  <a href="/queues">Queues (Bull Board)</a>
  <a href="/metrics">Metrics</a>
  ${options.readOnly ? html`<span class="badge pending" title="cancel, retry and Bull Board writes are disabled">read-only</span>` : ''}
  <form action="/lookup" method="get" role="search">
    <input name="q" value="${options.query ?? ''}" placeholder="dataset id, sample id or image URI" aria-label="look up a dataset or sample">
    <button type="submit">Find</button>
  </form>
</header>
<main>
${options.notice ? html`<div class="notice ${options.notice.kind}" role="status">${options.notice.text}</div>` : ''}
${options.body}
</main>
${options.script ? html`<script nonce="${options.nonce}">${options.script}</script>` : ''}
</body>
</html>`;
}
