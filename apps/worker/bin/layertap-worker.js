#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (run `pnpm build` first).
require('../dist/bin.js');
