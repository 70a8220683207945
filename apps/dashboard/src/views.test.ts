import { detail } from './__tests__/fixtures';
import { datasetPage, datasetsPage, progressText, samplePage } from './views';

const hostile = '<img src=x onerror=alert(1)>';

describe('views', () => {
  it('shows progress as done / total with the failures', () => {
    expect(progressText(detail())).toBe('42 / 100 done (2 failed)');
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
