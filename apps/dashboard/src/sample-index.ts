import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { storedUri, type ManifestLine, type SampleErrorInfo } from '@layertap/contracts';
import type { FoundSample, LayertapQueues } from '@layertap/queue';
import type { OpenDataset } from './server';

/** What the pages and the API show about one sample. */
export interface SampleView {
  datasetId: string;
  id: string;
  uri: string;
  status: 'ok' | 'failed';
  error?: SampleErrorInfo;
  /** layer spec -> output key relative to the output root. */
  outputs: Record<string, string>;
  /** The run that last processed the sample, when the index knows it. */
  run?: number;
}

/**
 * What to look up for a query: itself, a URI without its credentials (as manifests keep it) and, for an
 * absolute local path, the `file://` URI submit records for it.
 */
export function queryForms(idOrUri: string): string[] {
  const forms = path.isAbsolute(idOrUri) ? [idOrUri, pathToFileURL(idOrUri).href] : [idOrUri, storedUri(idOrUri)];
  return [...new Set(forms)];
}

export function fromIndex(found: FoundSample): SampleView {
  return {
    datasetId: found.datasetId,
    id: found.id,
    uri: found.uri,
    status: found.status,
    ...(found.status === 'failed' ? { error: { code: found.code ?? 'unknown', message: found.message ?? '' } } : {}),
    outputs: found.outputs ?? {},
    run: found.run,
  };
}

function fromManifest(datasetId: string, line: ManifestLine): SampleView {
  return { datasetId, id: line.id, uri: line.uri, status: line.status, ...(line.error ? { error: line.error } : {}), outputs: line.outputs };
}

export interface SampleFinderOptions {
  queues: LayertapQueues;
  datasets: OpenDataset;
  /** Finished datasets whose manifest is kept in memory for the fallback. Default 8. */
  manifestsCached?: number;
}

/**
 * Finds samples through the store's sample index (filled as chunks finish). A finished dataset the index
 * does not cover (submitted before the index existed, or samples of a chunk that failed for good) falls
 * back to its `manifest.jsonl`, read once per run and kept.
 */
export class SampleFinder {
  private readonly manifests = new Map<string, { run: number; byId: Map<string, SampleView>; byUri: Map<string, SampleView> }>();

  constructor(private readonly options: SampleFinderOptions) {}

  /** A sample by id or URI (a local path also matches its `file://` URI). */
  async find(datasetId: string, idOrUri: string): Promise<SampleView | undefined> {
    for (const q of queryForms(idOrUri)) {
      const found = await this.options.queues.store.findSample(datasetId, q);
      if (found) return fromIndex(found);
    }
    const manifest = await this.manifest(datasetId);
    for (const q of queryForms(idOrUri)) {
      const line = manifest?.byId.get(q) ?? manifest?.byUri.get(q);
      if (line) return line;
    }
    return undefined;
  }

  /** Matches in every dataset, newest dataset first, at most `limit`. */
  async findAnywhere(idOrUri: string, limit: number): Promise<SampleView[]> {
    for (const q of queryForms(idOrUri)) {
      const found = await this.options.queues.store.findSampleAnywhere(q, limit);
      if (found.length) return found.map(fromIndex);
    }
    return [];
  }

  private async manifest(datasetId: string) {
    const { queues, datasets } = this.options;
    const [config, progress] = await Promise.all([queues.store.latestRun(datasetId), queues.store.progress(datasetId)]);
    if (!config || !progress?.finished) return undefined;
    const hit = this.manifests.get(datasetId);
    if (hit && hit.run === config.run) return hit;
    const lines = (await datasets(config).manifest()) ?? [];
    const views = lines.map((l) => fromManifest(datasetId, l));
    const entry = { run: config.run, byId: new Map(views.map((v) => [v.id, v])), byUri: new Map(views.map((v) => [v.uri, v])) };
    this.manifests.delete(datasetId);
    this.manifests.set(datasetId, entry);
    while (this.manifests.size > (this.options.manifestsCached ?? 8)) this.manifests.delete(this.manifests.keys().next().value as string);
    return entry;
  }
}
