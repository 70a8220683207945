// Loading h5wasm (an ES module) from this CommonJS package.
import vm from 'node:vm';

export type H5wasm = (typeof import('h5wasm/node', { with: { 'resolution-mode': 'import' } }))['default'];

let loading: Promise<H5wasm> | undefined;

/**
 * h5wasm's Node build, initialised (its wasm module compiled and `ready` awaited), loaded once per process.
 * Its Emscripten file system is NODERAWFS: `new h5.File(path)` opens host paths directly, reading only what
 * is asked for (fc1 is not the whole 553 MB file).
 */
export function loadH5wasm(): Promise<H5wasm> {
  loading ??= importH5wasm().then(async (module) => {
    const wasm = (await module.ready) as unknown as { activate_throwing_error_handler?: () => number };
    // HDF5 prints its error stack to stderr and h5wasm then throws "name not defined": with this handler the
    // stack becomes the thrown error's message instead, which the readers turn into one line.
    wasm.activate_throwing_error_handler?.();
    return module;
  });
  return loading;
}

async function importH5wasm(): Promise<H5wasm> {
  try {
    // tsc (module node16) keeps this a real dynamic import in the CommonJS output.
    return (await import('h5wasm/node')).default;
  } catch (err) {
    // Under jest, import() is rewritten to require(), which cannot load an import-only package, or (this
    // compiled code loaded by another package's tests) refused without --experimental-vm-modules; import it
    // with Node's own loader instead (never reached outside jest).
    const code = (err as { code?: string }).code;
    const underJest = code === 'MODULE_NOT_FOUND' || /Cannot find module|--experimental-vm-modules/.test(String(err));
    if (!underJest) throw err;
    const loader = (vm as unknown as { constants?: { USE_MAIN_CONTEXT_DEFAULT_LOADER?: symbol } }).constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER;
    if (!loader) throw err;
    const script = new vm.Script('(specifier) => import(specifier)', { filename: __filename, importModuleDynamically: loader as never });
    const nativeImport = script.runInThisContext() as (specifier: string) => Promise<{ default: H5wasm }>;
    return (await nativeImport('h5wasm/node')).default;
  }
}
