// The inference process's settings: it inherits the worker's environment and reads only what it needs.
import { readCommonConfig, type S3Settings } from '@layertap/config';

/** The S3 settings remote weights are fetched with. */
export function childS3Settings(env: NodeJS.ProcessEnv = process.env): S3Settings {
  return readCommonConfig(env).s3;
}

/** The worker's `LAYERTAP_ALLOW_HOSTS` (checked when the worker started): weights URIs follow the samples' policy. */
export function childAllowHosts(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.LAYERTAP_ALLOW_HOSTS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

/**
 * `LAYERTAP_FAULT_DRILL=<engine>/<backend>` (e.g. `onnx/cpu`): every batch run of that engine fails as an
 * engine fault, as a lost GPU would, after its proof run passed. For rehearsing what workers do then (release
 * the chunk, move to the next engine) and for the tests that prove it. Unset in production.
 */
export function childFaultDrill(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env.LAYERTAP_FAULT_DRILL?.trim();
  return value ? value : undefined;
}
