const base = require('../jest.base.js');
/** @type {import('jest').Config} */
module.exports = { ...base, roots: ['<rootDir>'], testMatch: ['<rootDir>/**/*.e2e.test.ts'], testTimeout: 300_000 };
