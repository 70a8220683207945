// Prints, as one JSON line, the WebGPU adapter the `webgpu` package (Dawn) gets here, and which Vulkan loader
// and driver libraries the process loaded. Run by run-gpu-bench.sh with the bundle's node and environment:
//   node adapter-info.mjs            (from the unpacked bundle's directory)
// Exit code 1, with the reason in "error", when there is no adapter.
import { createRequire } from 'node:module';
import { readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const result = { adapter: null, features: [], limits: {}, libraries: [], error: null };

function loadedLibraries() {
  // Which libvulkan, GLVND and driver libraries this process mapped: proves where the loader came from.
  try {
    const maps = readFileSync('/proc/self/maps', 'utf8');
    const libs = new Set();
    for (const line of maps.split('\n')) {
      const file = line.slice(line.indexOf('/'));
      if (line.includes('/') && /lib(vulkan|GLX|GLdispatch|EGL|nvidia|vulkan_lvp)[^/]*\.so/.test(file)) libs.add(file.trim());
    }
    return [...libs].sort();
  } catch {
    return [];
  }
}

try {
  // `webgpu` is a dependency of @layertap/engines, which the deployed worker installs: resolve it from there.
  const engines = realpathSync(path.join(here, 'app', 'worker', 'node_modules', '@layertap', 'engines', 'package.json'));
  const webgpuPath = createRequire(engines).resolve('webgpu');
  const { create } = await import(pathToFileURL(webgpuPath).href);
  const gpu = create([]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('navigator.gpu.requestAdapter() returned null: no Vulkan device (see the loader messages above)');
  const info = adapter.info ?? (await adapter.requestAdapterInfo?.());
  const fields = {};
  for (const key of ['vendor', 'architecture', 'device', 'description', 'backendType', 'adapterType', 'type', 'driverDescription']) {
    if (info && info[key] !== undefined && info[key] !== '') fields[key] = info[key];
  }
  result.adapter = { ...fields, isFallbackAdapter: adapter.isFallbackAdapter ?? info?.isFallbackAdapter ?? null };
  result.features = [...adapter.features].sort();
  for (const key of ['maxBufferSize', 'maxStorageBufferBindingSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupsPerDimension']) {
    result.limits[key] = adapter.limits[key];
  }
} catch (err) {
  result.error = err instanceof Error ? err.message : String(err);
}
result.libraries = loadedLibraries();
process.stdout.write(`${JSON.stringify(result)}\n`);
// Dawn keeps handles open: leave without waiting for them.
process.exit(result.error ? 1 : 0);
