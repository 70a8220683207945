import { detail } from './__tests__/fixtures';
import { datasetPage, datasetsPage, progressText, samplePage } from './views';

const hostile = '<img src=x onerror=alert(1)>';

describe('views', () => {
  it('shows progress as done / total with the failures', () => {
    expect(progressText(detail())).toBe('42 / 100 done (2 failed)');
  });

  it('counts and colours the samples a cancel stopped apart from the failed ones: an orange segment, a legend entry, a count', () => {
    const cancelled = detail({
      state: 'cancelled',
      cancelled: true,
      etaSeconds: null,
      progress: { ...detail().progress, ok: 40, failed: 35, pending: 25, failures: { decode_failed: 5, cancelled: 30 } },
    });
    expect(progressText(cancelled)).toBe('75 / 100 done (5 failed, 30 cancelled)');
    const page = datasetPage(cancelled, { readOnly: false, formToken: 'tok' }).body.value;
    expect(page).toContain(
      '<div class="bar" data-field="bar" title="40 ok, 5 failed, 30 cancelled of 100"><div class="ok" style="width:40.00%"></div><div class="failed" style="width:5.00%"></div><div class="cancelled" style="width:30.00%"></div></div>',
    );
    expect(page).toContain('<span><i class="failed"></i>failed</span><span><i class="cancelled"></i>cancelled</span>');
    expect(page).toContain('<span>failed</span><b class="big" data-field="failed">5</b>');
    expect(page).toContain('<span>cancelled</span><b class="big" data-field="cancelled">30</b>');
    expect(page).toContain('data-field="progress">75 / 100 done (5 failed, 30 cancelled)</b>');
    // The list's bar has the same three segments.
    expect(datasetsPage([cancelled]).body.value).toContain('<div class="failed" style="width:5.00%"></div><div class="cancelled" style="width:30.00%"></div>');
    // Without a cancel, nothing is orange.
    expect(datasetPage(detail(), { readOnly: false, formToken: 'tok' }).body.value).toContain('<div class="cancelled" style="width:0.00%"></div>');
  });

  it('renders a dataset page with its numbers, configuration and failure examples, escaping what came from data', () => {
    const d = detail({
      failureExamples: { decode_failed: [{ id: 'bad-1', uri: `file:///x/${hostile}.jpg`, message: `cannot decode ${hostile}`, chunk: 0, run: 0, at: 0 }] },
    });
    const page = datasetPage(d, { readOnly: false, formToken: 'tok' }).body.value;
    expect(page).toContain('<b class="big" id="progress-text" data-field="progress">42 / 100 done (2 failed)</b>');
    expect(page).toContain('<b class="big" data-field="rate">5.3 img/s</b>');
    expect(page).toContain('<b class="big" data-field="eta">11s</b>');
    expect(page).toContain('<dd class="mono">features.9 (block2_pool), fc2</dd>');
    expect(page).toContain('<dd class="mono" id="output-location">s3://bucket/acts/cats-1/</dd>');
    expect(page).toContain('<a class="mono" href="/datasets/cats-1/samples/bad-1">bad-1</a> <span class="muted">cannot decode &lt;img src=x onerror=alert(1)&gt;</span>');
    expect(page).not.toContain(hostile);
    expect(page).toContain('<a href="/queues/queue/datasets/cats-1~r0">flow in Bull Board</a>');
    // Running: cancel enabled, retry disabled until it finishes.
    expect(page).toMatch(/<button class="danger" type="submit" name="cancel" title="workers stop after their current batch">/);
    expect(page).toMatch(/<button class="primary" type="submit" name="retry" disabled title="retry needs a finished dataset with failed samples">/);
    // Both forms post the page's token back.
    expect(page.match(/<form method="post" action="\/datasets\/cats-1\/(cancel|retry)"><input type="hidden" name="csrf" value="tok">/g)).toHaveLength(2);
  });

  it('shows a finished dataset with its duration and average, not a rate or an ETA, in the list and on its page', () => {
    const done = detail({
      state: 'done',
      progress: { ...detail().progress, ok: 98, failed: 2, pending: 0, finished: true },
      rate: 0,
      etaSeconds: null,
      finishedAt: Date.parse('2025-03-01T12:02:05.000Z'),
      durationSeconds: 125,
      averageRate: 0.8,
    });
    const page = datasetPage(done, { readOnly: false, formToken: 'tok' }).body.value;
    expect(page).toContain('<span>average images/s</span><b class="big" data-field="average">0.8 img/s</b>');
    expect(page).toContain('<span>took</span><b class="big" data-field="duration">2m05s</b>');
    expect(page).toContain('run 0 · submitted 2025-03-01 12:00:00Z · finished 2025-03-01 12:02:05Z · chunks:');
    expect(page).not.toContain('data-field="rate"');
    expect(page).not.toContain('data-field="eta"');
    expect(page).not.toContain('ETA');
    const row = datasetsPage([done]).body.value;
    expect(row).toMatch(/<td class="num rate" title="[^"]+"><span data-field="average">0.8 img\/s<\/span> avg<\/td>/);
    expect(row).toMatch(/<td class="num time" title="[^"]+">took <span data-field="duration">2m05s<\/span><\/td>/);
    expect(row).not.toContain('data-field="eta"');
  });

  it('shows a failed dataset with when it failed and no ETA', () => {
    const failed = detail({ state: 'failed', rate: 0, etaSeconds: null, finishedAt: Date.parse('2025-03-01T12:00:12.000Z'), durationSeconds: 12, averageRate: null });
    const page = datasetPage(failed, { readOnly: false, formToken: 'tok' }).body.value;
    expect(page).toContain('<span>failed after</span><b class="big" data-field="duration">12s</b>');
    expect(page).toContain('<b class="big" data-field="average">--</b>');
    expect(page).toContain('· failed 2025-03-01 12:00:12Z ·');
    expect(page).toContain('>the run was too short, or finished no sample, to chart</text>');
    expect(page).not.toContain('ETA');
    const row = datasetsPage([failed]).body.value;
    expect(row).toContain('failed after <span data-field="duration">12s</span></td>');
    expect(row).toMatch(/<span data-field="average">--<\/span><\/td>/);
    expect(row.slice(row.indexOf('<tbody>'))).not.toContain('ETA');
    // Cancelled and still stopping: its rate, no ETA.
    const stopping = datasetPage(detail({ state: 'cancelled', cancelled: true, etaSeconds: null }), { readOnly: false, formToken: 'tok' }).body.value;
    expect(stopping).toContain('<b class="big" data-field="rate">5.3 img/s</b>');
    expect(stopping).not.toContain('ETA');
  });

  it('shows the engines with their devices and warnings, the format, weights and why this preprocessing, escaped', () => {
    const d = detail({
      config: { ...detail().config, format: 'shards', weights: `s3://w/${hostile}.h5`, preprocessReason: 'the weights were trained with it' },
      weights: `s3://w/${hostile}.h5`,
      engines: [
        { engine: 'onnx', backend: 'cpu', device: { kind: 'cpu', description: 'AMD EPYC (2 threads)' }, reason: 'requested', warnings: [] },
        { engine: 'tfjs', backend: 'webgpu', device: { kind: 'gpu', description: `llvmpipe ${hostile}`, software: true }, reason: 'r', warnings: [`software adapter ${hostile}`] },
      ],
    });
    const page = datasetPage(d, { readOnly: false, formToken: 'tok' }).body.value;
    expect(page).toContain('<dd id="engines"><div title="requested">onnx / cpu on AMD EPYC (2 threads)</div><div title="r">tfjs / webgpu on llvmpipe &lt;img');
    expect(page).toContain('<div class="warning">warning: software adapter &lt;img src=x onerror=alert(1)&gt;</div>');
    expect(page).toContain(`<dd id="format">shards: one safetensors file per chunk, with its samples&#39; arrays</dd>`);
    expect(page).toContain('<dd class="mono" id="weights">s3://w/&lt;img src=x onerror=alert(1)&gt;.h5</dd>');
    expect(page).toContain('<dd id="preprocessing">torchvision at 224px, RGB<div class="muted">why: the weights were trained with it</div>');
    expect(page).not.toContain(hostile);
    expect(datasetPage(detail(), { readOnly: false, formToken: 'tok' }).body.value).toContain(
      '<dd id="engines"><span class="muted">shown once a worker has loaded the model</span></dd>',
    );
    expect(datasetPage(detail(), { readOnly: false, formToken: 'tok' }).body.value).toContain('<dd id="format">npy: one .npy file per sample and layer</dd>');
  });

  it('disables both actions in read-only mode', () => {
    const page = datasetPage(detail({ progress: { ...detail().progress, pending: 0, finished: true }, state: 'done' }), { readOnly: true, formToken: 'tok' }).body.value;
    expect(page.match(/disabled title="the dashboard is read-only"/g)).toHaveLength(2);
  });

  it('puts the dataset state and run in the refresh script without letting data close the script', () => {
    const script = datasetPage(detail({ datasetId: '</script>x' }), { readOnly: false, formToken: 'tok' }).script.value;
    expect(script).toContain('var DATASET = {"id":"\\u003c/script>x","state":"running","run":0};');
  });

  it('lists datasets with their progress and a row per dataset for the refresh script', () => {
    const page = datasetsPage([detail(), detail({ datasetId: 'dogs' })]).body.value;
    expect(page.match(/<tr data-dataset="/g)).toHaveLength(2);
    expect(page).toContain('<div class="muted" data-field="progress">42 / 100 done (2 failed)</div>');
    expect(datasetsPage([]).body.value).toContain('No datasets yet.');
  });

  it('shows a failed sample with its error, and an ok one with its outputs in layer order and a montage', () => {
    const failed = samplePage(
      { dataset: detail(), sample: { datasetId: 'cats-1', id: 'bad-1', uri: hostile, status: 'failed', error: { code: 'decode_failed', message: hostile }, outputs: {} } },
      { readOnly: false, formToken: 'tok' },
    ).body.value;
    expect(failed).toContain('<code class="error" id="error-code">decode_failed</code>');
    expect(failed).toContain('<span class="badge failed" id="sample-status">failed</span>');
    expect(failed).not.toContain(hostile);
    expect(failed).toContain('<input type="hidden" name="back" value="/datasets/cats-1/samples/bad-1">');
    // The actions are the dataset's: apart from the sample's heading, and labelled so.
    expect(failed).toMatch(/<h1><span class="mono">bad-1<\/span> <span class="badge failed" id="sample-status">failed<\/span><\/h1>/);
    expect(failed).toContain('<div class="card" id="dataset-actions"><h2>Dataset actions (all samples of cats-1, not only this one)</h2>');
    expect(failed).toMatch(/name="cancel" title="workers stop after their current batch">Cancel the whole dataset<\/button>/);
    expect(failed).toMatch(/name="retry" disabled title="retry needs a finished dataset with failed samples">Retry the dataset&#39;s 2 failed samples<\/button>/);

    const ok = samplePage(
      {
        dataset: detail(),
        sample: { datasetId: 'cats-1', id: 'a', uri: 's3://b/a.jpg', status: 'ok', outputs: { fc2: 'cats-1/fc2/a.npy', 'features.9': 'cats-1/features.9/a.npy' }, run: 0 },
        layer: 'fc2',
      },
      { readOnly: false, formToken: 'tok' },
    ).body.value;
    expect([...ok.matchAll(/<tr><td class="mono">([^<]+)<\/td>/g)].map((m) => m[1])).toEqual(['features.9', 'fc2']);
    expect(ok).toContain('src="/datasets/cats-1/samples/a/montage.png?layer=fc2"');
    expect(ok).toContain('<a class="active" href="/datasets/cats-1/samples/a?layer=fc2">fc2</a>');
  });
});
