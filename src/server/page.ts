// The /assignments page: HTML written in chunks as the pods are read, a page of pods at a
// time. It only ever sees public keys; secrets never reach this module.
import type { StateCounts } from '../allocation/counts.js';
import { ROUTES } from '../api/paths.js';

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Escapes text for HTML content and quoted attribute values alike. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

export interface PageHead {
  readonly counts: StateCounts & { pods: number };
  readonly query: string;
  readonly nonce: string;
  readonly now: number;
}

const STYLE = `
:root{font-family:system-ui,sans-serif;color:#1b1f24;background:#f6f7f9}
body{margin:0 auto;max-width:1200px;padding:1.5rem}
h1{font-size:1.4rem;margin:0 0 .2rem} .sub{color:#57606a;margin:0 0 1rem}
.totals{display:flex;flex-wrap:wrap;gap:.75rem;margin:0 0 1rem;padding:0;list-style:none}
.totals li{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:.6rem 1rem;min-width:7rem}
.totals .n{display:block;font-size:1.6rem;font-weight:600;font-variant-numeric:tabular-nums}
.totals .free{border-left:5px solid #2da44e}.totals .allocated{border-left:5px solid #0969da}
.totals .cooling{border-left:5px solid #bf8700}.totals .retired{border-left:5px solid #8c959f}
.totals .depositing{border-left:5px solid #8250df}.totals .conflict{border-left:5px solid #a40e26;background:#ffebe9}.totals .deposit-failed{border-left:5px solid #cf222e}
form{display:flex;gap:.5rem;align-items:center;margin:0 0 1rem}
input{flex:1;font:inherit;padding:.45rem .6rem;border:1px solid #d0d7de;border-radius:6px}
button{font:inherit;padding:.45rem .9rem;border-radius:6px;border:1px solid #d0d7de;background:#fff;cursor:pointer}
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid #d0d7de;table-layout:fixed}
col.pod{width:20%} col.count{width:4.5rem} col.beat{width:7.5rem}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #eaeef2;vertical-align:top}
th{background:#f0f2f5;font-weight:600} td.count{text-align:right;font-variant-numeric:tabular-nums}
td.keys{font-family:ui-monospace,monospace;font-size:.78rem;white-space:pre-line;word-break:break-all;color:#24292f}
nav{margin:1rem 0;color:#57606a} a{color:#0969da}
td{overflow-wrap:anywhere}
@media (max-width:640px){
body{padding:.75rem} form{flex-wrap:wrap} input{min-width:0}
table,tbody,tr,td{display:block;width:auto} thead,colgroup{display:none}
tr{border-bottom:1px solid #d0d7de;padding:.4rem 0} td{border:0;padding:.15rem .6rem}
td.count{text-align:left} td.count::before{content:"keys: "} td.beat::before{content:"heartbeat: "}
}
`;

// Narrows the rows on this page as the user types; "Search all pods" asks the server. The
// rows are indexed at the first keystroke, not at load: 10,000 pods then cost the load nothing.
const FILTER_SCRIPT = `
const box=document.getElementById('q');const shown=document.getElementById('shown');const none=document.getElementById('none');
let rows=null;
function index(){return [...document.getElementById('pods').tBodies[0].rows].map(r=>({r,pod:r.dataset.pod,keys:r.cells[3].textContent.split('\\n')}))}
function apply(){rows??=index();const q=box.value.trim().toLowerCase();const hex=/^(0x)?[0-9a-f]+$/.test(q)?(q.startsWith('0x')?q:'0x'+q):null;let n=0;
for(const x of rows){const ok=!q||x.pod.includes(q)||(hex!==null&&x.keys.some(k=>k.startsWith(hex)));x.r.hidden=!ok;if(ok)n++}
shown.textContent=String(n);none.hidden=n>0}
box.addEventListener('input',apply);
`;

export function pageHead(h: PageHead): string {
  const tile = (cls: string, n: number, label: string) =>
    `<li class="${cls}"><span class="n" data-state="${cls}">${n}</span>${label}</li>`;
  const c = h.counts;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>pkm · key assignments</title><style nonce="${h.nonce}">${STYLE}</style></head><body>
<h1>Key assignments</h1>
<p class="sub">Which pod holds which validator public keys, as of <time datetime="${new Date(h.now).toISOString()}">${new Date(h.now).toISOString()}</time>. Also as <a href="${ROUTES.assignments}">JSON</a>; every change is in the <a href="${ROUTES.events}">audit log</a>.</p>
<ul class="totals">${tile('free', c.free, 'free')}${tile('allocated', c.allocated, 'allocated')}${tile('cooling', c.cooling, 'cooling')}${tile('fenced', c.fenced, 'fenced (cooling, stop not confirmed)')}${tile('retired', c.retired, 'retired')}${tile('depositing', c.depositing, 'depositing')}${tile('deposit-failed', c['deposit-failed'], 'deposit failed')}${tile('conflict', c.conflict, 'in conflict')}${tile('reported', c.reported, 'reported, unknown to the store')}${tile('pods', c.pods, 'pods')}${tile('total', c.total, 'keys in all')}</ul>
<form method="get" action="${ROUTES.assignmentsPage}" role="search">
<label for="q">Filter</label><input id="q" name="q" value="${escapeHtml(h.query)}" placeholder="pod name, or pubkey prefix 0x…" autocomplete="off" spellcheck="false">
<button type="submit">Search all pods</button></form>
<table id="pods"><colgroup><col class="pod"><col class="count"><col class="beat"><col></colgroup><thead><tr><th scope="col">Pod</th><th scope="col">Keys</th><th scope="col">Last heartbeat (UTC)</th><th scope="col">Public keys</th></tr></thead><tbody>
`;
}

export function podRow(name: string, pubkeys: readonly string[], heartbeat?: number): string {
  const pod = escapeHtml(name);
  // One text node per row, a key a line: no element per key keeps 40,000 keys quick to parse.
  const keys = pubkeys.map((k) => escapeHtml(k)).join('\n');
  const beat =
    heartbeat === undefined
      ? '—'
      : `<time datetime="${new Date(heartbeat).toISOString()}">${new Date(heartbeat).toISOString().slice(11, 19)}</time>`;
  return `<tr data-pod="${pod}"><td>${pod}</td><td class="count">${pubkeys.length}</td><td class="beat">${beat}</td><td class="keys">${keys}</td></tr>\n`;
}

export interface PageFoot {
  readonly shown: number;
  readonly query: string;
  readonly nextAfter: string | undefined;
  readonly limit: number;
  readonly nonce: string;
}

export function pageFoot(f: PageFoot): string {
  const params = (after: string) =>
    new URLSearchParams({ ...(f.query ? { q: f.query } : {}), after, limit: String(f.limit) });
  const next =
    f.nextAfter === undefined
      ? ''
      : ` · <a id="next" href="${ROUTES.assignmentsPage}?${escapeHtml(params(f.nextAfter).toString())}">next ${f.limit} pods →</a>`;
  return `</tbody></table>
<p id="none"${f.shown > 0 ? ' hidden' : ''}>No pod matches.</p>
<nav>Showing <span id="shown">${f.shown}</span> pods${next}</nav>
<script nonce="${f.nonce}">${FILTER_SCRIPT}</script>
</body></html>
`;
}
