// Where downloaded weights are cached. The only place the weights code reads `process.env` (project rule:
// environment access lives in env/config modules).
import { homedir } from 'node:os';
import path from 'node:path';

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
