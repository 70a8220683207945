import { sampleCounts } from '@layertap/queue';
import { rateChartSvg } from './chart';
import type { DatasetDetail, DatasetSummary } from './dataset-view';
import { html, raw, scriptJson, seg, type SafeHtml } from './html';
import type { SampleView } from './sample-index';
import { formatDuration } from './throughput';

export interface ViewContext {
  readOnly: boolean;
  /** The token the page's forms post back (write-guard.ts). */
  formToken: string;
}

/** The form field that carries the token. */
export const FORM_TOKEN_FIELD = 'csrf';

function badge(state: string): SafeHtml {
  return html`<span class="badge ${state}" data-field="state">${state}</span>`;
}

function percent(part: number, total: number): string {
  return total > 0 ? `${((100 * part) / total).toFixed(2)}%` : '0%';
}

/** The bar's segments: ok (green), failed (red), cancelled (orange: stopped by a cancel, not broken). */
function progressBar(d: DatasetSummary): SafeHtml {
  const { ok, failed, cancelled, total } = sampleCounts(d.progress);
  const title = `${ok} ok, ${failed} failed${cancelled ? `, ${cancelled} cancelled` : ''} of ${total}`;
  return html`<div class="bar" data-field="bar" title="${title}"><div class="ok" style="width:${percent(ok, total)}"></div><div class="failed" style="width:${percent(failed, total)}"></div><div class="cancelled" style="width:${percent(cancelled, total)}"></div></div>`;
}

/** What the bar's colours mean, under the bar on a dataset's page. */
function barLegend(): SafeHtml {
  return html`<div class="legend muted"><span><i class="ok"></i>ok</span><span><i class="failed"></i>failed</span><span><i class="cancelled"></i>cancelled</span><span><i class="pending"></i>pending</span></div>`;
}

/**
 * "12 / 60 done (2 failed)", or "(2 failed, 5 cancelled)" once a cancel stopped samples: the text the pages
 * update as progress comes in. Cancelled samples are done but not failed (retry runs them).
 */
export function progressText(d: Pick<DatasetSummary, 'progress'>): string {
  const { ok, failed, cancelled, total } = sampleCounts(d.progress);
  return `${ok + failed + cancelled} / ${total} done (${failed} failed${cancelled ? `, ${cancelled} cancelled` : ''})`;
}

/** Whether the run goes on and an ETA means something (not once it ended, failed, or was cancelled). */
function moving(d: DatasetSummary): boolean {
  return d.finishedAt === null && (d.state === 'running' || d.state === 'finishing');
}

function liveRateText(d: DatasetSummary): string {
  return `${d.rate.toFixed(1)} img/s`;
}

function averageText(d: DatasetSummary): string {
  return d.averageRate === null ? '--' : `${d.averageRate.toFixed(1)} img/s`;
}

/** "took" or "failed after", before an ended run's duration. */
function endedWord(d: DatasetSummary): string {
  return d.state === 'failed' ? 'failed after' : 'took';
}

const DURATION_TITLE = 'from submission to the manifest written (or the dataset failing), queue wait included';

/** The list's images/s cell: the live rate while it runs, the run's average once it ended. */
function rateCell(d: DatasetSummary): SafeHtml {
  if (d.finishedAt === null) return html`<td class="num rate" data-field="rate">${liveRateText(d)}</td>`;
  return html`<td class="num rate" title="${`average over the run: ${DURATION_TITLE}`}"><span data-field="average">${averageText(d)}</span>${d.averageRate === null ? '' : ' avg'}</td>`;
}

/** The list's time cell: the ETA while it runs, how long it took (or ran until it failed) once it ended. */
function timeCell(d: DatasetSummary): SafeHtml {
  if (d.finishedAt !== null) return html`<td class="num time" title="${DURATION_TITLE}">${endedWord(d)} <span data-field="duration">${formatDuration(d.durationSeconds ?? undefined)}</span></td>`;
  if (moving(d)) return html`<td class="num time">ETA <span data-field="eta">${formatDuration(d.etaSeconds ?? undefined)}</span></td>`;
  return html`<td class="num time">--</td>`;
}

/** The dataset page's figures after the counts: rate and ETA while it runs, average and duration once it ended. */
function timingStats(d: DatasetSummary): SafeHtml {
  if (d.finishedAt !== null) {
    return html`<div title="${`the run's samples over its duration: ${DURATION_TITLE}`}"><span>average images/s</span><b class="big" data-field="average">${averageText(d)}</b></div>
    <div title="${DURATION_TITLE}"><span>${endedWord(d)}</span><b class="big" data-field="duration">${formatDuration(d.durationSeconds ?? undefined)}</b></div>`;
  }
  return html`<div><span>images/s</span><b class="big" data-field="rate">${liveRateText(d)}</b></div>${
    moving(d) ? html`
    <div><span>ETA</span><b class="big" data-field="eta">${formatDuration(d.etaSeconds ?? undefined)}</b></div>` : ''
  }`;
}

/** When the latest run was submitted and, once it ended, when it ended. */
function runTimes(d: DatasetSummary): string {
  const ended = d.finishedAt === null ? '' : ` · ${d.state === 'failed' ? 'failed' : 'finished'} ${when(new Date(d.finishedAt).toISOString())}`;
  return `submitted ${when(d.config.submittedAt)}${ended}`;
}

function layersText(d: DatasetSummary): string {
  return d.config.layers.map((l) => (l.spec === l.canonical ? l.spec : `${l.spec} (${l.canonical})`)).join(', ');
}

function when(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function datasetLink(id: string): string {
  return `/datasets/${seg(id)}`;
}

export function sampleLink(datasetId: string, sampleId: string): string {
  return `/datasets/${seg(datasetId)}/samples/${seg(sampleId)}`;
}

/** The client side of auto-refresh: polls a JSON URL every 2 s and fills `[data-field]` elements. */
const REFRESH_SCRIPT = `
function fmtEta(s) {
  if (s === null || s === undefined || !isFinite(s) || s < 0) return '--';
  s = Math.round(s);
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm' + String(s % 60).padStart(2, '0') + 's';
  return Math.floor(s / 3600) + 'h' + String(Math.floor((s % 3600) / 60)).padStart(2, '0') + 'm';
}
function pct(part, total) { return total > 0 ? (100 * part / total).toFixed(2) + '%' : '0%'; }
function fill(root, d) {
  var p = d.progress;
  // As sampleCounts: samples a cancel stopped are counted apart from the failed ones.
  var cancelled = Math.min(p.failed, (p.failures && p.failures.cancelled) || 0), failed = p.failed - cancelled;
  var set = function (name, text) { root.querySelectorAll('[data-field="' + name + '"]').forEach(function (el) { el.textContent = text; }); };
  set('progress', (p.ok + p.failed) + ' / ' + p.total + ' done (' + failed + ' failed' + (cancelled ? ', ' + cancelled + ' cancelled' : '') + ')');
  set('ok', String(p.ok)); set('failed', String(failed)); set('cancelled', String(cancelled)); set('pending', String(p.pending));
  if (d.workers !== undefined) set('workers', String(d.workers));
  // Only a running dataset's page or row has these two; an ended one is rendered whole (a reload on the change).
  set('rate', d.rate.toFixed(1) + ' img/s'); set('eta', fmtEta(d.etaSeconds));
  set('chunks', d.chunks.done + ' done, ' + d.chunks.failed + ' failed, ' + d.chunks.pending + ' pending of ' + d.chunks.total);
  root.querySelectorAll('[data-field="state"]').forEach(function (el) { el.textContent = d.state; el.className = 'badge ' + d.state; });
  root.querySelectorAll('[data-field="bar"]').forEach(function (el) {
    el.children[0].style.width = pct(p.ok, p.total); el.children[1].style.width = pct(failed, p.total); el.children[2].style.width = pct(cancelled, p.total);
    el.title = p.ok + ' ok, ' + failed + ' failed' + (cancelled ? ', ' + cancelled + ' cancelled' : '') + ' of ' + p.total;
  });
}
`;

export function datasetsPage(datasets: DatasetSummary[]): { title: string; body: SafeHtml; script: SafeHtml } {
  const rows = datasets.map(
    (d) => html`<tr data-dataset="${d.datasetId}" data-state="${d.state}">
  <td><a href="${datasetLink(d.datasetId)}" class="mono">${d.datasetId}</a><div class="muted">run ${d.config.run} · ${when(d.config.submittedAt)}</div></td>
  <td>${badge(d.state)}</td>
  <td>${progressBar(d)}<div class="muted" data-field="progress">${progressText(d)}</div></td>
  ${rateCell(d)}
  ${timeCell(d)}
  <td class="mono">${layersText(d)}</td>
  <td class="mono">${d.outputLocation}</td>
</tr>`,
  );
  const body = html`<h1>Datasets</h1>
<div class="card">
  ${
    datasets.length
      ? html`<table>
    <thead><tr><th>dataset</th><th>state</th><th>progress</th><th class="num">images/s</th><th class="num">ETA / duration</th><th>layers</th><th>output</th></tr></thead>
    <tbody>${rows}</tbody>
  </table>`
      : html`<p class="muted">No datasets yet. Submit one with <code>layertap submit &lt;source&gt; --layer … --output …</code>.</p>`
  }
</div>`;
  const script = html`${raw(REFRESH_SCRIPT)}
async function poll() {
  try {
    var res = await fetch('/api/datasets', { headers: { accept: 'application/json' } });
    if (res.ok) {
      var body = await res.json();
      // A new dataset, or one whose state changed (its figures change kind): render the list afresh.
      var changed = body.datasets.some(function (d) {
        var row = document.querySelector('tr[data-dataset="' + CSS.escape(d.datasetId) + '"]');
        return !row || row.getAttribute('data-state') !== d.state;
      });
      if (changed) { location.reload(); return; }
      body.datasets.forEach(function (d) {
        fill(document.querySelector('tr[data-dataset="' + CSS.escape(d.datasetId) + '"]'), d);
      });
    }
  } catch (e) {}
  setTimeout(poll, 2000);
}
setTimeout(poll, 2000);`;
  return { title: 'Datasets', body, script };
}

/** The buttons' texts: short on the dataset's page, explicit about acting on the whole dataset elsewhere. */
interface ActionLabels {
  cancel: string;
  retry: string;
}

const DATASET_PAGE_LABELS: ActionLabels = { cancel: 'Cancel', retry: 'Retry failed samples' };

function datasetWideLabels(d: DatasetSummary): ActionLabels {
  const n = d.progress.failed;
  return { cancel: 'Cancel the whole dataset', retry: n > 0 ? `Retry the dataset's ${n} failed sample${n === 1 ? '' : 's'}` : "Retry the dataset's failed samples" };
}

/** Cancel and Retry; `back` is the page the browser returns to afterwards. */
function actionForms(d: DatasetSummary, ctx: ViewContext, back: string, labels: ActionLabels = DATASET_PAGE_LABELS): SafeHtml {
  const base = datasetLink(d.datasetId);
  const why = ctx.readOnly ? 'the dashboard is read-only' : '';
  const canCancel = !d.progress.finished && !d.cancelled;
  const canRetry = d.progress.finished && d.progress.failed > 0;
  const hidden = html`<input type="hidden" name="${FORM_TOKEN_FIELD}" value="${ctx.formToken}"><input type="hidden" name="back" value="${back}">`;
  return html`<div class="actions">
  <form method="post" action="${base}/cancel">${hidden}<button class="danger" type="submit" name="cancel"${!canCancel || ctx.readOnly ? raw(' disabled') : ''} title="${why || (canCancel ? 'workers stop after their current batch' : 'only a running dataset can be cancelled')}">${labels.cancel}</button></form>
  <form method="post" action="${base}/retry">${hidden}<button class="primary" type="submit" name="retry"${!canRetry || ctx.readOnly ? raw(' disabled') : ''} title="${why || (canRetry ? 'run the failed samples again as a new run' : 'retry needs a finished dataset with failed samples')}">${labels.retry}</button></form>
</div>`;
}

/** The dataset's images/s chart (the page's, and the one its script fetches while the run goes on). */
export function datasetChart(d: DatasetDetail): SafeHtml {
  return rateChartSvg(d.throughput, d.finishedAt === null ? {} : { emptyText: 'the run was too short, or finished no sample, to chart' });
}

const FORMAT_TEXT: Record<DatasetSummary['config']['format'], string> = {
  npy: 'npy: one .npy file per sample and layer',
  shards: "shards: one safetensors file per chunk, with its samples' arrays",
};

/** Each engine that ran the dataset's chunks: engine / backend on its device (why it was chosen on hover), warnings. */
function enginesText(d: DatasetSummary): SafeHtml {
  if (d.engines.length === 0) return html`<span class="muted">shown once a worker has loaded the model</span>`;
  return html`${d.engines.map(
    (e) => html`<div title="${e.reason}">${e.engine} / ${e.backend} on ${e.device.description}${e.warnings.map((w) => html`<div class="warning">warning: ${w}</div>`)}</div>`,
  )}`;
}

function failuresCard(d: DatasetDetail): SafeHtml {
  const reasons = Object.entries(d.progress.failures).sort((a, b) => b[1] - a[1]);
  if (reasons.length === 0 && d.chunkFailures.length === 0) return html`<div class="card"><h2>Failures</h2><p class="muted">None.</p></div>`;
  const rows = reasons.map(([code, n]) => {
    const examples = d.failureExamples[code] ?? [];
    return html`<tr><td><code class="error">${code}</code></td><td class="num">${n}</td><td>${
      examples.length
        ? examples.map((s) => html`<div><a class="mono" href="${sampleLink(d.datasetId, s.id)}">${s.id}</a> <span class="muted">${s.message}</span></div>`)
        : html`<span class="muted">examples appear once the chunk's results are stored</span>`
    }</td></tr>`;
  });
  return html`<div class="card"><h2>Failures by reason</h2>
<table><thead><tr><th>reason</th><th class="num">samples</th><th>examples</th></tr></thead><tbody>${rows}</tbody></table>
${d.chunkFailures.map((f) => html`<p class="error">chunk ${f.chunk} (<span class="mono">${f.jobId}</span>) failed: ${f.reason}</p>`)}
</div>`;
}

export function datasetPage(d: DatasetDetail, ctx: ViewContext): { title: string; body: SafeHtml; script: SafeHtml } {
  const c = d.config;
  const base = datasetLink(d.datasetId);
  const counts = sampleCounts(d.progress);
  const body = html`<h1><span class="mono">${d.datasetId}</span> ${badge(d.state)} ${d.cancelled ? html`<span class="badge cancelled">cancel requested</span>` : ''} ${actionForms(d, ctx, base)}</h1>
<div class="card">
  ${progressBar(d)}
  ${barLegend()}
  <div class="stats">
    <div><span>progress</span><b class="big" id="progress-text" data-field="progress">${progressText(d)}</b></div>
    <div><span>ok</span><b class="big" data-field="ok">${d.progress.ok}</b></div>
    <div><span>failed</span><b class="big" data-field="failed">${counts.failed}</b></div>
    <div title="stopped by a cancel before they ran: not broken, retry runs them"><span>cancelled</span><b class="big" data-field="cancelled">${counts.cancelled}</b></div>
    <div><span>pending</span><b class="big" data-field="pending">${d.progress.pending}</b></div>
    <div title="workers connected to the chunk queue (all datasets share them)"><span>workers</span><b class="big" data-field="workers">${d.workers === undefined ? '?' : String(d.workers)}</b></div>
    ${timingStats(d)}
  </div>
  <p class="muted">run ${c.run} · ${runTimes(d)} · chunks: <span data-field="chunks">${d.chunks.done} done, ${d.chunks.failed} failed, ${d.chunks.pending} pending of ${d.chunks.total}</span>${
    d.parentJob ? html` · <a href="/queues/queue/datasets/${seg(d.parentJob.id)}">flow in Bull Board</a>` : ''
  }</p>
  ${d.reason ? html`<p class="error" data-field="reason">stopped: ${d.reason}</p>` : ''}
  ${d.next ? html`<p class="muted" data-field="next">next: ${d.next}</p>` : ''}
  <h2>Images per second</h2>
  <div id="chart">${datasetChart(d)}</div>
</div>
<div class="grid">
  <div class="card"><h2>Configuration</h2><dl>
    <dt>layers</dt><dd class="mono">${layersText(d)}</dd>
    <dt>output</dt><dd class="mono" id="output-location">${d.outputLocation}</dd>
    <dt>engine</dt><dd id="engines">${enginesText(d)}</dd>
    <dt>weights</dt><dd class="mono" id="weights">${d.weights}</dd>
    <dt>preprocessing</dt><dd id="preprocessing">${d.preprocessing.mode} at ${d.preprocessing.imageSize}px, ${d.preprocessing.channelOrder}${
      c.preprocessReason ? html`<div class="muted">why: ${c.preprocessReason}</div>` : ''
    }<div class="muted">${d.preprocessing.reference}</div><div class="muted">resize: ${d.preprocessing.resize}; crop: ${d.preprocessing.crop}</div></dd>
    <dt>format</dt><dd id="format">${FORMAT_TEXT[c.format]}</dd>
    <dt>stored as</dt><dd>${c.dtype}, ${c.layout}${c.pool !== 'none' ? `, ${c.pool}-pooled` : ''}</dd>
    <dt>batches</dt><dd>${c.batchSize} per batch, ${c.chunkSize} samples per chunk</dd>
    <dt>runs</dt><dd>${d.runs.map((r) => html`<div>run ${r.run}: ${r.samples} samples, ${when(r.submittedAt)}</div>`)}</dd>
  </dl></div>
  <div class="card"><h2>Find a sample</h2>
    <form method="get" action="${base}/samples"><input name="q" placeholder="sample id or image URI" style="width:70%"> <button type="submit">Open</button></form>
    <p class="muted">Manifest: <span class="mono">${d.outputLocation}manifest.jsonl</span></p>
  </div>
</div>
${failuresCard(d)}`;
  const script = html`${raw(REFRESH_SCRIPT)}
var DATASET = ${scriptJson({ id: d.datasetId, state: d.state, run: c.run })};
async function poll() {
  try {
    var res = await fetch('/api/datasets/' + encodeURIComponent(DATASET.id) + '/summary', { headers: { accept: 'application/json' } });
    if (res.ok) {
      var d = await res.json();
      fill(document, d);
      var chart = await fetch('/datasets/' + encodeURIComponent(DATASET.id) + '/throughput.svg');
      if (chart.ok) document.getElementById('chart').innerHTML = await chart.text();
      // Failures, examples and the actions change when the state or the run does: load them afresh.
      if (d.state !== DATASET.state || d.config.run !== DATASET.run) { location.reload(); return; }
    }
  } catch (e) {}
  setTimeout(poll, 2000);
}
setTimeout(poll, 2000);`;
  return { title: d.datasetId, body, script };
}

export interface SamplePageData {
  dataset: DatasetSummary;
  sample: SampleView;
  layer?: string;
}

export function samplePage(v: SamplePageData, ctx: ViewContext): { title: string; body: SafeHtml; script: SafeHtml } {
  const { dataset: d, sample: s } = v;
  const base = sampleLink(d.datasetId, s.id);
  // In the dataset's order of layers.
  const order = d.config.layers.map((l) => l.spec);
  const layers = Object.keys(s.outputs).sort((a, b) => (order.indexOf(a) + 1 || Infinity) - (order.indexOf(b) + 1 || Infinity));
  const layer = v.layer && layers.includes(v.layer) ? v.layer : layers[0];
  const body = html`<p><a href="${datasetLink(d.datasetId)}">← ${d.datasetId}</a></p>
<h1><span class="mono">${s.id}</span> <span class="badge ${s.status}" id="sample-status">${s.status}</span></h1>
<div class="card"><dl>
  <dt>image</dt><dd class="mono">${s.uri}</dd>
  <dt>dataset</dt><dd><a class="mono" href="${datasetLink(d.datasetId)}">${d.datasetId}</a> ${badge(d.state)} run ${d.config.run}</dd>
  ${s.error ? html`<dt>error</dt><dd><code class="error" id="error-code">${s.error.code}</code> <span id="error-message">${s.error.message}</span></dd>` : ''}
  ${s.run !== undefined ? html`<dt>processed by</dt><dd>run ${s.run}</dd>` : ''}
</dl></div>
<div class="card" id="dataset-actions"><h2>Dataset actions (all samples of ${d.datasetId}, not only this one)</h2>
${actionForms(d, ctx, base, datasetWideLabels(d))}
</div>
${
  layers.length
    ? html`<div class="card"><h2>Outputs</h2>
<table><thead><tr><th>layer</th><th>object (relative to the output root)</th></tr></thead><tbody>${layers.map(
        (l) => html`<tr><td class="mono">${l}</td><td class="mono"><a href="${base}/outputs/${seg(l)}">${s.outputs[l] ?? ''}</a></td></tr>`,
      )}</tbody></table>
<p class="muted">Stored as ${d.config.dtype}, ${d.config.layout}.</p></div>
<div class="card"><h2>Feature maps</h2>
<p class="tabs">${layers.map((l) => html`<a class="${l === layer ? 'active' : ''}" href="${base}?layer=${seg(l)}">${l}</a>`)}</p>
<p class="muted">The input as the network saw it (${d.config.preprocess} at ${d.config.imageSize}px) beside the 16 channels with the highest mean activation, each scaled to its own range.</p>
<img class="montage" id="montage" alt="${`feature maps of ${s.id} at ${layer ?? ''}`}" src="${base}/montage.png?layer=${seg(layer ?? '')}">
</div>`
    : html`<div class="card"><p class="muted">No outputs: the sample ${s.status === 'failed' ? 'failed' : 'has not run yet'}.${
        s.status === 'failed' && d.progress.finished ? ' Fix the input, then retry the failed samples of the dataset.' : ''
      }</p></div>`
}`;
  return { title: `${s.id} · ${d.datasetId}`, body, script: reloadOnChange(d) };
}

/** Polls the dataset and reloads the page when its state or run changes (a retry run finishing, ...). */
function reloadOnChange(d: DatasetSummary): SafeHtml {
  return html`var DATASET = ${scriptJson({ id: d.datasetId, state: d.state, run: d.config.run })};
async function poll() {
  try {
    var res = await fetch('/api/datasets/' + encodeURIComponent(DATASET.id) + '/summary', { headers: { accept: 'application/json' } });
    if (res.ok) {
      var d = await res.json();
      if (d.state !== DATASET.state || d.config.run !== DATASET.run) { location.reload(); return; }
    }
  } catch (e) {}
  setTimeout(poll, 2000);
}
setTimeout(poll, 2000);`;
}

export function samplesFoundPage(query: string, samples: SampleView[]): { title: string; body: SafeHtml } {
  return {
    title: `“${query}”`,
    body: html`<h1>Samples matching <span class="mono">${query}</span></h1>
<div class="card"><table><thead><tr><th>dataset</th><th>sample</th><th>status</th><th>image</th></tr></thead><tbody>${samples.map(
      (s) => html`<tr><td class="mono"><a href="${datasetLink(s.datasetId)}">${s.datasetId}</a></td><td class="mono"><a href="${sampleLink(s.datasetId, s.id)}">${s.id}</a></td><td><span class="badge ${s.status}">${s.status}</span></td><td class="mono">${s.uri}</td></tr>`,
    )}</tbody></table></div>`,
  };
}

export function messagePage(title: string, message: string): { title: string; body: SafeHtml } {
  return { title, body: html`<h1>${title}</h1><div class="card"><p>${message}</p><p><a href="/">All datasets</a></p></div>` };
}
