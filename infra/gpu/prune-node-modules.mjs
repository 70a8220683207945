#!/usr/bin/env node
// Shrinks `pnpm deploy --legacy` outputs for the offline GPU bundle (infra/gpu/build-bundle.sh):
//
//   node prune-node-modules.mjs [--platform linux-x64] [--report FILE] DEPLOY_DIR [DEPLOY_DIR...]
//
// 1. Drops node_modules/.pnpm entries that the deployed package cannot reach through its dependencies (a legacy
//    deploy installs the closure of the whole workspace root, the dashboard's included).
// 2. Drops what Node never loads on linux-x64: other platforms' binaries (webgpu's dist/<platform>,
//    onnxruntime-node's bin/napi-v*/<os>/<arch>, @img/sharp-* of other platforms), source maps, TypeScript
//    (sources and .d.ts), docs, tests, and every file of the @tensorflow/tfjs-* packages except the Node bundle
//    their `main` names and their .wasm files.
// 3. Hard-links identical files between the deploy directories (tar then stores them once).
// It refuses (exit 1) when a symlink leads outside its deploy directory: the bundle would break on the host.
// Only Node's standard library: it runs before anything is installed.
import { lstatSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, existsSync, linkSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
let platform = `${process.platform}-${process.arch}`;
let reportFile;
const dirs = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--platform') platform = args[++i];
  else if (args[i] === '--report') reportFile = args[++i];
  else dirs.push(path.resolve(args[i]));
}
if (dirs.length === 0) {
  console.error('usage: prune-node-modules.mjs [--platform linux-x64] [--report FILE] DEPLOY_DIR [DEPLOY_DIR...]');
  process.exit(2);
}
const [os, arch] = platform.split('-');

/** Every path under `dir` (not following symlinks), files and links, with lstat. */
function* walk(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(p);
    else yield p;
  }
}

function bytesOf(dir) {
  let total = 0;
  const seen = new Set();
  for (const p of walk(dir)) {
    const st = lstatSync(p);
    if (!st.isFile() || seen.has(st.ino)) continue;
    seen.add(st.ino);
    total += st.size;
  }
  return total;
}

const mb = (n) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
const removed = new Map(); // reason -> bytes (each inode counted once: deploys share files through hard links)
const removedInodes = new Set();
function remove(p, reason) {
  if (!existsSync(p) && !isLink(p)) return;
  let size = 0;
  for (const f of lstatSync(p).isDirectory() ? walk(p) : [p]) {
    const st = lstatSync(f);
    if (st.isFile() && !removedInodes.has(st.ino)) {
      removedInodes.add(st.ino);
      size += st.size;
    }
  }
  removed.set(reason, (removed.get(reason) ?? 0) + size);
  rmSync(p, { recursive: true, force: true });
}
function isLink(p) {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Package directories directly in a node_modules directory (`name` and `@scope/name`), links included. */
function packagesIn(nodeModules) {
  if (!existsSync(nodeModules)) return [];
  const out = [];
  for (const name of readdirSync(nodeModules)) {
    if (name.startsWith('.')) continue;
    const p = path.join(nodeModules, name);
    if (name.startsWith('@') && !isLink(p)) for (const sub of readdirSync(p)) out.push(path.join(p, sub));
    else out.push(p);
  }
  return out;
}

// 1. Reachability over the virtual store.
function collectGarbage(deployDir) {
  const store = path.join(deployDir, 'node_modules', '.pnpm');
  if (!existsSync(store)) return;
  const idOf = (target) => {
    const rel = path.relative(store, target);
    if (rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
    return rel.split(path.sep)[0];
  };
  const reached = new Set();
  const queue = [];
  const follow = (link) => {
    const target = path.resolve(path.dirname(link), readlinkSync(link));
    const rel = path.relative(deployDir, target);
    if (rel.startsWith('..') || path.isAbsolute(rel)) {
      throw new Error(`${link} points outside ${deployDir} (to ${target}): the bundle would not work elsewhere`);
    }
    const id = idOf(target);
    if (id && !reached.has(id)) {
      reached.add(id);
      queue.push(id);
    }
  };
  // Roots: what the deployed package declares (its node_modules may hold more: the workspace's own packages).
  const own = JSON.parse(readFileSync(path.join(deployDir, 'package.json'), 'utf8'));
  for (const name of Object.keys({ ...own.dependencies, ...own.optionalDependencies })) {
    const p = path.join(deployDir, 'node_modules', name);
    if (isLink(p)) follow(p);
    else if (!existsSync(p) && !(own.optionalDependencies ?? {})[name]) throw new Error(`${own.name}: dependency ${name} is not installed in ${deployDir}`);
  }
  for (const p of packagesIn(path.join(deployDir, 'node_modules'))) {
    const rel = path.relative(path.join(deployDir, 'node_modules'), p).split(path.sep).join('/');
    if (isLink(p) && !(rel in { ...own.dependencies, ...own.optionalDependencies })) rmSync(p);
  }
  while (queue.length > 0) {
    const id = queue.shift();
    for (const p of packagesIn(path.join(store, id, 'node_modules'))) if (isLink(p)) follow(p);
  }
  for (const id of readdirSync(store)) {
    if (id === 'node_modules' || !statSync(path.join(store, id)).isDirectory()) continue;
    if (!reached.has(id)) remove(path.join(store, id), 'packages the deployed package does not depend on');
  }
  // Hoisted links (.pnpm/node_modules) whose package is gone.
  for (const p of packagesIn(path.join(store, 'node_modules'))) if (isLink(p) && !existsSync(p)) rmSync(p);
}

// 2. Files Node never loads here.
const DOC = /^(changelog|history|changes|authors|contributors|readme|security|code_of_conduct|contributing)(\..*)?$/i;
const LICENSE = /^(licen[cs]e|notice|copying|copyright)/i;
const TYPESCRIPT = /\.(d\.[mc]?ts|[mc]?ts|tsx)$/;
const JUNK_FILE = /(\.map|\.md|\.markdown|\.tsbuildinfo|\.gyp|\.gypi|\.cc|\.cpp|\.hpp|\.h|\.c)$|^(\.npmignore|\.eslintrc.*|\.prettierrc.*|\.editorconfig|\.travis\.yml|tsconfig.*\.json|Makefile|CMakeLists\.txt)$/;
const JUNK_DIR = /^(__tests__|test|tests|\.github|example|examples|benchmark|benchmarks|docs)$/;

function prunePackage(pkgDir) {
  const pkgJson = path.join(pkgDir, 'package.json');
  if (!existsSync(pkgJson)) return;
  const pkg = JSON.parse(readFileSync(pkgJson, 'utf8'));
  const name = pkg.name ?? '';
  if (name === 'webgpu') {
    for (const d of readdirSync(path.join(pkgDir, 'dist'))) {
      const keep = d === (os === 'darwin' ? 'darwin-universal' : platform);
      if (!keep) remove(path.join(pkgDir, 'dist', d), 'other platforms\' binaries');
    }
  }
  if (name === 'onnxruntime-node') {
    const bin = path.join(pkgDir, 'bin');
    for (const napi of existsSync(bin) ? readdirSync(bin) : []) {
      for (const o of readdirSync(path.join(bin, napi))) {
        if (o !== os) remove(path.join(bin, napi, o), 'other platforms\' binaries');
        else for (const a of readdirSync(path.join(bin, napi, o))) if (a !== arch) remove(path.join(bin, napi, o, a), 'other platforms\' binaries');
      }
    }
  }
  if (name.startsWith('@tensorflow/tfjs-') && pkg.main) {
    // The Node bundle `main` names is self-contained; the ES modules, browser bundles and tests are not loaded.
    const main = path.resolve(pkgDir, pkg.main);
    for (const p of walk(pkgDir)) {
      const base = path.basename(p);
      if (p === main || p === pkgJson || LICENSE.test(base) || (p.endsWith('.wasm') && path.dirname(p) === path.dirname(main))) continue;
      remove(p, 'tfjs: everything but the Node bundle and its .wasm');
    }
  }
  if (name === 'h5wasm') {
    // Loaded as `h5wasm/node` only.
    for (const d of ['esm', 'iife']) remove(path.join(pkgDir, 'dist', d), 'h5wasm: browser builds');
  }
  pruneFiles(pkgDir, pkgDir);
}

function pruneFiles(dir, pkgDir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isSymbolicLink()) continue;
    if (entry.isDirectory()) {
      if (entry.name === 'node_modules') continue;
      if (JUNK_DIR.test(entry.name) && dir === pkgDir) remove(p, 'tests, docs and examples');
      else pruneFiles(p, pkgDir);
      continue;
    }
    if (LICENSE.test(entry.name) || entry.name === 'package.json') continue;
    if (TYPESCRIPT.test(entry.name)) remove(p, 'TypeScript sources and declarations');
    else if (DOC.test(entry.name) || JUNK_FILE.test(entry.name)) remove(p, 'source maps, docs, build files');
  }
}

function pruneDeploy(deployDir) {
  const store = path.join(deployDir, 'node_modules', '.pnpm');
  if (existsSync(store)) {
    for (const id of readdirSync(store)) {
      if (id === 'node_modules') continue;
      if (/^@img\+sharp-(libvips-)?/.test(id) && !id.includes(`-${platform}@`)) {
        remove(path.join(store, id), 'other platforms\' binaries');
        continue;
      }
      for (const p of packagesIn(path.join(store, id, 'node_modules'))) if (!isLink(p)) prunePackage(p);
    }
  }
  // The deployed package itself: its dist/ (maps, .d.ts), not its node_modules.
  pruneFiles(deployDir, path.join(deployDir, '\0'));
}

// 3. Identical files across deploy directories become one inode.
function hardlinkDuplicates() {
  const byKey = new Map();
  let saved = 0;
  for (const dir of dirs) {
    const store = path.join(dir, 'node_modules', '.pnpm');
    if (!existsSync(store)) continue;
    for (const p of walk(store)) {
      const st = lstatSync(p);
      if (!st.isFile() || st.size === 0) continue;
      const rel = path.relative(store, p);
      const key = `${rel}\0${st.size}`;
      const first = byKey.get(key);
      if (!first) {
        byKey.set(key, p);
        continue;
      }
      if (lstatSync(first).ino === st.ino) continue;
      const a = readFileSync(first);
      const b = readFileSync(p);
      if (!a.equals(b) || lstatSync(first).mode !== st.mode) continue;
      const tmp = `${p}.hardlink-tmp`;
      linkSync(first, tmp);
      renameSync(tmp, p);
      saved += st.size;
    }
  }
  return saved;
}

const before = dirs.map(bytesOf);
for (const dir of dirs) {
  collectGarbage(dir);
  pruneDeploy(dir);
}
const separate = dirs.map(bytesOf);
const linked = hardlinkDuplicates();

// What is left, per package, largest first (counted once across the deploy directories).
const perPackage = new Map();
const seen = new Set();
for (const dir of dirs) {
  for (const p of walk(dir)) {
    const st = lstatSync(p);
    if (!st.isFile() || seen.has(st.ino)) continue;
    seen.add(st.ino);
    const rel = path.relative(dir, p).split(path.sep);
    const key = rel[0] === 'node_modules' && rel[1] === '.pnpm' ? rel[2].replace(/@[^@+]*$/, '').replace(/_.*$/, '') : `${path.basename(dir)} (own files)`;
    perPackage.set(key, (perPackage.get(key) ?? 0) + st.size);
  }
}
const lines = [
  `node_modules pruned for ${platform}:`,
  ...dirs.map((d, i) => `  ${path.basename(d)}: ${mb(before[i])} deployed -> ${mb(separate[i])}`),
  `  removed (summed over the deploy directories): ${[...removed].map(([why, n]) => `${why} ${mb(n)}`).join('; ')}`,
  `  hard-linked duplicates between the deploy directories: ${mb(linked)}; total now ${mb([...perPackage.values()].reduce((a, b) => a + b, 0))}`,
  '  largest packages:',
  ...[...perPackage].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, n]) => `    ${mb(n).padStart(10)}  ${k}`),
];
console.log(lines.join('\n'));
if (reportFile) writeFileSync(reportFile, `${lines.join('\n')}\n`);
