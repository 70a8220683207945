// Where downloaded weights are cached, where named weights are downloaded from, and the model-file cap. The only
// place the model package reads `process.env` (project rule: environment access lives in env/config modules).
import { homedir } from 'node:os';
import path from 'node:path';
import { ErrorCode, ValidationError } from '@layertap/contracts';
import { PUBLISHED_WEIGHTS_NAMES, publishedWeightsName, type PublishedWeightsName, type WeightsChecksum } from './published-weights';

/**
 * The default weights cache: `$LAYERTAP_WEIGHTS_CACHE` when set, else `layertap/weights` under the OS cache
 * directory (`$XDG_CACHE_HOME` or `~/.cache` on Linux, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on
 * Windows).
 */
export function defaultWeightsCacheDir(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string {
  if (env.LAYERTAP_WEIGHTS_CACHE) return path.resolve(env.LAYERTAP_WEIGHTS_CACHE);
  return path.join(osCacheDir(env, platform), 'layertap', 'weights');
}

function osCacheDir(env: NodeJS.ProcessEnv, platform: NodeJS.Platform): string {
  const home = env.HOME ?? homedir();
  if (platform === 'darwin') return path.join(home, 'Library', 'Caches');
  if (platform === 'win32') return env.LOCALAPPDATA ?? path.join(home, 'AppData', 'Local');
  return env.XDG_CACHE_HOME ? path.resolve(env.XDG_CACHE_HOME) : path.join(home, '.cache');
}

/** Where named weights come from, and what they are checked against. */
export interface PublishedWeightsSource {
  /**
   * `$LAYERTAP_WEIGHTS_MIRROR`: a base URL serving the published files under their published paths
   * (`<mirror>/models/vgg16-397923af.pth`, `<mirror>/tensorflow/keras-applications/vgg16/<file>`), for
   * machines that cannot reach storage.googleapis.com or download.pytorch.org. Unset: the published URLs.
   */
  mirror?: string;
  /**
   * `$LAYERTAP_WEIGHTS_MIRROR_CHECKSUMS`: for mirrors that re-host other copies of the files (re-saved,
   * re-packed): a JSON object `{"<name>": {"size": n, "md5": "...", "sha256": "...", "sha256Prefix": "..."}}`
   * replacing the published checksums of the names it lists. Only with `LAYERTAP_WEIGHTS_MIRROR`.
   */
  checksums?: Partial<Record<PublishedWeightsName, WeightsChecksum>>;
}

/** Reads `LAYERTAP_WEIGHTS_MIRROR` and `LAYERTAP_WEIGHTS_MIRROR_CHECKSUMS`, refusing malformed values. */
export function publishedWeightsSource(env: NodeJS.ProcessEnv = process.env): PublishedWeightsSource {
  const mirror = env.LAYERTAP_WEIGHTS_MIRROR?.trim() || undefined;
  if (mirror) {
    let url: URL | undefined;
    try {
      url = new URL(mirror);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw new ValidationError(ErrorCode.InvalidRequest, `LAYERTAP_WEIGHTS_MIRROR must be an http(s):// base URL, got ${JSON.stringify(mirror)}`);
    }
  }
  const raw = env.LAYERTAP_WEIGHTS_MIRROR_CHECKSUMS?.trim();
  if (!raw) return mirror ? { mirror } : {};
  if (!mirror) {
    throw new ValidationError(ErrorCode.InvalidRequest, 'LAYERTAP_WEIGHTS_MIRROR_CHECKSUMS applies to a mirror\'s copies: set LAYERTAP_WEIGHTS_MIRROR too (or unset it)');
  }
  return { mirror, checksums: parseChecksums(raw) };
}

function parseChecksums(raw: string): Partial<Record<PublishedWeightsName, WeightsChecksum>> {
  const bad = (problem: string) =>
    new ValidationError(ErrorCode.InvalidRequest, `LAYERTAP_WEIGHTS_MIRROR_CHECKSUMS: ${problem} (expected {"<name>": {"size": n, "md5"|"sha256"|"sha256Prefix": "<hex>"}})`);
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    throw bad(`not JSON (${(err as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw bad('not a JSON object');
  const out: Partial<Record<PublishedWeightsName, WeightsChecksum>> = {};
  for (const [key, value] of Object.entries(json as Record<string, unknown>)) {
    const name = publishedWeightsName(key);
    if (!name) throw bad(`unknown weights ${JSON.stringify(key)} (known: ${PUBLISHED_WEIGHTS_NAMES.join(', ')})`);
    const v = value as Record<string, unknown>;
    const checksum: WeightsChecksum = {};
    if (v.size !== undefined) {
      if (!Number.isSafeInteger(v.size) || (v.size as number) < 0) throw bad(`${key}.size is not a byte count`);
      checksum.size = v.size as number;
    }
    for (const field of ['md5', 'sha256', 'sha256Prefix'] as const) {
      if (v[field] === undefined) continue;
      if (typeof v[field] !== 'string' || !/^[0-9a-f]{8,64}$/i.test(v[field] as string)) throw bad(`${key}.${field} is not hex digits`);
      checksum[field] = (v[field] as string).toLowerCase();
    }
    if (!checksum.md5 && !checksum.sha256 && !checksum.sha256Prefix) throw bad(`${key} gives no md5, sha256 or sha256Prefix`);
    out[name] = checksum;
  }
  return out;
}

/** The largest ONNX model file layertap reads unless `LAYERTAP_MAX_MODEL_MB` says otherwise: 1 GiB (protobuf's own limit is 2 GiB). */
export const DEFAULT_MAX_MODEL_BYTES = 1024 * 1024 * 1024;

/** `$LAYERTAP_MAX_MODEL_MB`: the cap on ONNX model files, in bytes (default `DEFAULT_MAX_MODEL_BYTES`); 1 to 2048 MiB. */
export function maxModelBytes(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.LAYERTAP_MAX_MODEL_MB?.trim();
  if (!raw) return DEFAULT_MAX_MODEL_BYTES;
  const mb = Number(raw);
  if (!Number.isInteger(mb) || mb < 1 || mb > 2048) {
    throw new ValidationError(ErrorCode.InvalidRequest, `LAYERTAP_MAX_MODEL_MB must be a whole number of MiB from 1 to 2048, got ${JSON.stringify(raw)}`);
  }
  return mb * 1024 ** 2;
}

/**
 * `$LAYERTAP_H5_PARSE_SECONDS`: how long reading a Keras `.h5` may take before the file is refused (a hostile
 * file can make HDF5 loop). Default 20; a positive number of seconds.
 */
export function h5ParseSeconds(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const raw = env.LAYERTAP_H5_PARSE_SECONDS?.trim();
  if (!raw) return undefined;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new ValidationError(ErrorCode.InvalidRequest, `LAYERTAP_H5_PARSE_SECONDS must be a positive number of seconds, got ${JSON.stringify(raw)}`);
  }
  return seconds;
}
