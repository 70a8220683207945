import { randomBytes } from 'node:crypto';
import express, { Router, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { ErrorCode, LayertapError, ValidationError, describeError, storedUri } from '@layertap/contracts';
import { renderMontage, type ImageFetcher } from '@layertap/imaging';
import type { LayertapQueues } from '@layertap/queue';
import { retryDataset, cancelDataset, retrySelection } from '@layertap/datasets';
import type { OutputWriter } from '@layertap/storage';
import type { Logger } from '@layertap/config';
import type { DatasetViews } from './dataset-view';
import type { SafeHtml } from './html';
import { page } from './layout';
import type { SampleFinder } from './sample-index';
import type { OpenDataset } from './server';
import { FORM_TOKEN_FIELD, datasetChart, datasetPage, datasetsPage, messagePage, sampleLink, samplePage, samplesFoundPage } from './views';
import { FormTokens, crossSiteRefusal } from './write-guard';
import { version } from './version';

export interface DatasetRoutesOptions {
  queues: LayertapQueues;
  views: DatasetViews;
  samples: SampleFinder;
  datasets: OpenDataset;
  /** The output writer of a dataset's `output`: cancel and retry take stock of the outputs as the CLI does. */
  output: (uri: string) => OutputWriter;
  /** Reads samples' source images for montages. */
  fetcher: ImageFetcher;
  readOnly: boolean;
  log: Logger;
}

/** An HTTP answer other than 200, with a message for the page or the JSON body. */
class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const notFound = (what: string) => new HttpError(404, what);

function wantsJson(req: Request): boolean {
  return req.path.startsWith('/api/') || !req.accepts('html');
}

function intParam(value: unknown, fallback: number, min: number, max: number): number {
  const n = typeof value === 'string' ? Number(value) : NaN;
  return Number.isInteger(n) ? Math.min(max, Math.max(min, n)) : fallback;
}

function text(value: unknown): string {
  return typeof value === 'string' ? value.trim() : '';
}

/** The JSON API's writes: refused when they may come from another site (see write-guard.ts). */
const sameOrigin: RequestHandler = (req, _res, next) => {
  const refused = crossSiteRefusal(req);
  next(refused ? new HttpError(403, refused) : undefined);
};

/** Where a form goes back to: a dataset or sample page of this dashboard, never another site. */
function backTo(req: Request, fallback: string): string {
  const back = text((req.body as Record<string, unknown> | undefined)?.back).split(/[?#]/)[0] ?? '';
  return /^\/datasets\/[^/]/.test(back) && !back.includes('//') && !back.includes('\\') ? back : fallback;
}

/** The notice shown after an action, from the fixed codes the redirect carries (never free text). */
function noticeFrom(req: Request): { kind: 'ok' | 'error'; text: string } | undefined {
  const done = text(req.query.done);
  if (done === 'cancel') return { kind: 'ok', text: 'Cancel requested: workers stop after their current batch; samples not run are recorded as cancelled.' };
  if (done === 'retry') {
    const n = intParam(req.query.n, 0, 0, Number.MAX_SAFE_INTEGER);
    const run = intParam(req.query.run, 0, 0, Number.MAX_SAFE_INTEGER);
    return n > 0 ? { kind: 'ok', text: `Retrying ${n} failed sample${n === 1 ? '' : 's'} as run ${run}.` } : { kind: 'ok', text: 'No failed samples to retry.' };
  }
  return undefined;
}

/** The dataset pages, their JSON API, the montage images and the cancel/retry actions. */
export function datasetRoutes(options: DatasetRoutesOptions): Router {
  const { queues, views, samples, datasets, fetcher, readOnly, log } = options;
  const router = Router();
  const form = express.urlencoded({ extended: false, limit: '8kb' });
  const tokens = new FormTokens();
  /** layertap's forms: each carries the token of the page it came from (see write-guard.ts). */
  const formToken: RequestHandler = (req, _res, next) => {
    const refused = tokens.refusal(req, (req.body as Record<string, unknown> | undefined)?.[FORM_TOKEN_FIELD]);
    next(refused ? new HttpError(403, refused) : undefined);
  };

  function send(res: Response, content: { title: string; body: SafeHtml; script?: SafeHtml }, req: Request, query?: string): void {
    const nonce = randomBytes(16).toString('base64');
    const notice = noticeFrom(req);
    res
      .set('Content-Security-Policy', `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'unsafe-inline'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'`)
      .set('Cache-Control', 'no-store')
      .type('html')
      .send(page({ ...content, nonce, readOnly, ...(query ? { query } : {}), ...(notice ? { notice } : {}) }).value);
  }

  async function detailOr404(id: string) {
    const detail = await views.detail(id);
    if (!detail) throw notFound(`no dataset "${id}"`);
    return detail;
  }

  async function sampleOr404(datasetId: string, sampleId: string) {
    const dataset = await views.summary(datasetId);
    if (!dataset) throw notFound(`no dataset "${datasetId}"`);
    const sample = await samples.find(datasetId, sampleId);
    if (!sample) throw notFound(`dataset ${datasetId} has no finished sample "${sampleId}" (samples appear once their chunk is done)`);
    return { dataset, sample };
  }

  // --- JSON API -------------------------------------------------------------------------------------------
  router.get('/api/datasets', async (_req, res) => {
    res.json({ datasets: await views.list() });
  });
  router.get('/api/datasets/:id', async (req, res) => {
    res.json(await detailOr404(req.params.id));
  });
  router.get('/api/datasets/:id/summary', async (req, res) => {
    const summary = await views.summary(req.params.id);
    if (!summary) throw notFound(`no dataset "${req.params.id}"`);
    res.json(summary);
  });
  router.get('/api/datasets/:id/throughput', async (req, res) => {
    const detail = await detailOr404(req.params.id);
    res.json({ datasetId: detail.datasetId, run: detail.config.run, rate: detail.rate, etaSeconds: detail.etaSeconds, points: detail.throughput });
  });
  router.get('/api/datasets/:id/failures', async (req, res) => {
    const status = await views.summary(req.params.id);
    if (!status) throw notFound(`no dataset "${req.params.id}"`);
    const perReason = intParam(req.query.perReason, 5, 1, 100);
    res.json({ datasetId: status.datasetId, failures: status.progress.failures, examples: await queues.store.failureExamples(status.datasetId, perReason) });
  });
  router.get('/api/datasets/:id/samples/:sampleId', async (req, res) => {
    res.json((await sampleOr404(req.params.id, req.params.sampleId)).sample);
  });
  /** `?q=` a dataset id, a sample id or a URI: the datasets and samples it names. */
  router.get('/api/lookup', async (req, res) => {
    const q = text(req.query.q);
    if (!q) throw new HttpError(400, 'missing ?q= (a dataset id, sample id or URI)');
    const limit = intParam(req.query.limit, 20, 1, 200);
    const dataset = (await queues.store.latestRun(q)) ? [q] : [];
    res.json({ query: storedUri(q), datasets: dataset, samples: await samples.findAnywhere(q, limit) });
  });

  // --- pages ----------------------------------------------------------------------------------------------
  router.get('/', async (req, res) => {
    send(res, datasetsPage(await views.list()), req);
  });
  router.get('/lookup', async (req, res) => {
    const q = text(req.query.q);
    if (!q) return void res.redirect(303, '/');
    if (await queues.store.latestRun(q)) return void res.redirect(303, `/datasets/${encodeURIComponent(q)}`);
    const found = await samples.findAnywhere(q, 50);
    if (found.length === 1) return void res.redirect(303, sampleLink(found[0]!.datasetId, found[0]!.id));
    if (found.length === 0) {
      res.status(404);
      return send(res, messagePage('Nothing found', `No dataset id, and no finished sample with the id or URI "${storedUri(q)}".`), req, storedUri(q));
    }
    send(res, samplesFoundPage(storedUri(q), found), req, storedUri(q));
  });
  router.get('/datasets/:id', async (req, res) => {
    send(res, datasetPage(await detailOr404(req.params.id), { readOnly, formToken: tokens.tokenFor(req) }), req);
  });
  router.get('/datasets/:id/throughput.svg', async (req, res) => {
    const detail = await detailOr404(req.params.id);
    res.set('Cache-Control', 'no-store').type('image/svg+xml').send(datasetChart(detail).value);
  });
  router.get('/datasets/:id/samples', async (req, res) => {
    const q = text(req.query.q);
    const found = q ? await samples.find(req.params.id, q) : undefined;
    if (found) return void res.redirect(303, sampleLink(found.datasetId, found.id));
    res.status(404);
    send(res, messagePage('Sample not found', `Dataset ${req.params.id} has no finished sample with the id or URI "${storedUri(q)}".`), req, storedUri(q));
  });
  router.get('/datasets/:id/samples/:sampleId', async (req, res) => {
    const { dataset, sample } = await sampleOr404(req.params.id, req.params.sampleId);
    const layer = text(req.query.layer);
    send(res, samplePage({ dataset, sample, ...(layer ? { layer } : {}) }, { readOnly, formToken: tokens.tokenFor(req) }), req);
  });
  router.get('/datasets/:id/samples/:sampleId/outputs/:layer', async (req, res) => {
    const { dataset, sample } = await sampleOr404(req.params.id, req.params.sampleId);
    const ref = sample.outputs[req.params.layer];
    const body = ref ? await datasets(dataset.config).npy(ref) : undefined;
    if (!ref || !body) throw notFound(`sample ${sample.id} has no stored output for layer "${req.params.layer}"`);
    res
      .type('application/octet-stream')
      .attachment(`${sample.id}.${req.params.layer}.npy`)
      .send(body);
  });
  router.get('/datasets/:id/samples/:sampleId/montage.png', async (req, res) => {
    const { dataset, sample } = await sampleOr404(req.params.id, req.params.sampleId);
    const layer = text(req.query.layer) || Object.keys(sample.outputs)[0] || '';
    const key = sample.outputs[layer];
    if (!key) throw notFound(`sample ${sample.id} has no output for layer "${layer}"`);
    const activation = await datasets(dataset.config).activation(key);
    if (!activation) throw notFound(`the output ${key} is gone from ${dataset.config.output}`);
    let input: Buffer | undefined;
    try {
      input = await fetcher.fetch(sample.uri);
    } catch (err) {
      // The maps are still worth showing when the source moved or is not readable from here.
      log.warn({ datasetId: dataset.datasetId, sampleId: sample.id, err: describeError(err) }, 'montage without its source image');
    }
    const png = await renderMontage({
      ...(input ? { input: { bytes: input, view: { preprocess: dataset.config.preprocess, imageSize: dataset.config.imageSize } } } : {}),
      activation: { ...activation, layout: dataset.config.layout },
      // Bounded: a montage is rendered in memory for each request.
      channels: intParam(req.query.channels, 16, 1, 64),
      size: intParam(req.query.size, 96, 16, 192),
      title: `${sample.id} / ${layer} (${activation.shape.join('x')})${input ? '' : ' - source image unavailable'}`,
    });
    res.set('Cache-Control', 'private, max-age=60').type('png').send(png);
  });

  // --- actions --------------------------------------------------------------------------------------------
  const refuseWhenReadOnly: RequestHandler = (_req, res, next) => {
    if (!readOnly) return next();
    res.set('Allow', 'GET, HEAD');
    next(new HttpError(405, 'the dashboard is read-only: cancel and retry are disabled'));
  };

  async function cancel(req: Request, res: Response): Promise<void> {
    const id = String(req.params.id);
    if (!(await queues.store.latestRun(id))) throw notFound(`no dataset "${id}"`);
    // As `layertap cancel`: a running dataset is asked to stop; one that stopped (failed, unknown) is closed now,
    // what never ran recorded as cancelled and the manifest written.
    const outcome = await cancelDataset(queues, id, { output: options.output, version, log });
    log.info({ datasetId: id, action: outcome.action }, 'dataset cancelled from the dashboard');
    if (req.path.startsWith('/api/')) {
      return void res.json({ datasetId: id, cancelled: outcome.action !== 'none', action: outcome.action, ...(outcome.result ? { result: outcome.result } : {}) });
    }
    res.redirect(303, `${backTo(req, `/datasets/${encodeURIComponent(id)}`)}?done=cancel`);
  }

  async function retry(req: Request, res: Response): Promise<void> {
    const id = String(req.params.id);
    if (!(await queues.store.latestRun(id))) throw notFound(`no dataset "${id}"`);
    // As `layertap retry`: every sample that is not ok, from the outputs and Redis (not only the manifest's failures).
    const result = await retryDataset(queues, id, { failedSamples: (config) => retrySelection(queues, options.output(config.output), id) });
    log.info({ datasetId: id, run: result.run, retried: result.retried }, 'dataset retried from the dashboard');
    if (req.path.startsWith('/api/')) return void res.json(result);
    res.redirect(303, `${backTo(req, `/datasets/${encodeURIComponent(id)}`)}?done=retry&n=${result.retried}&run=${result.run ?? ''}`);
  }

  router.post('/api/datasets/:id/cancel', refuseWhenReadOnly, sameOrigin, cancel);
  router.post('/api/datasets/:id/retry', refuseWhenReadOnly, sameOrigin, retry);
  router.post('/datasets/:id/cancel', refuseWhenReadOnly, form, formToken, cancel);
  router.post('/datasets/:id/retry', refuseWhenReadOnly, form, formToken, retry);

  // --- errors ---------------------------------------------------------------------------------------------
  router.use((err: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    let status = 500;
    if (err instanceof HttpError) status = err.status;
    // A refusal of the action as asked (not finished, nothing to read): the request conflicts with the state.
    else if (err instanceof ValidationError) status = 409;
    else if (err instanceof LayertapError && err.code === ErrorCode.DecodeFailed) status = 422;
    else log.error({ err, path: req.path }, 'dashboard request failed');
    const message = status === 500 ? 'internal error (see the dashboard log)' : describeError(err);
    res.status(status);
    if (wantsJson(req)) return void res.json({ error: message, ...(err instanceof LayertapError ? { code: err.code } : {}) });
    send(res, messagePage(status === 404 ? 'Not found' : status === 405 ? 'Not allowed' : 'Error', message), req);
  });
  return router;
}
