// The only place this package touches `process.env` (project rule: environment access lives in env/config
// modules).

/**
 * Makes libtensorflow (tfjs-node-gpu) allocate GPU memory as it needs it instead of taking the whole GPU at
 * start-up, unless the user chose otherwise. Must run before the native module loads.
 * @returns whether the variable was set here (false when the user had set it).
 */
export function allowTensorflowGpuGrowth(): boolean {
  if (process.env.TF_FORCE_GPU_ALLOW_GROWTH !== undefined) return false;
  process.env.TF_FORCE_GPU_ALLOW_GROWTH = 'true';
  return true;
}
