#!/usr/bin/env node
// Makes the pinned CDK packages available to this checkout, installing them
// with `npm ci` only when they are not already resolvable at the pinned
// versions. A fresh checkout (a pipeline pod) installs; a machine that shares
// one install through NODE_PATH (`cargo xtask demo`, the end-to-end tests)
// skips the 200 MB reinstall.
'use strict';

const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const pkg = require(path.join(root, 'package.json'));
const pinned = { ...pkg.dependencies };

function installedVersion(name) {
  try {
    const manifest = require.resolve(`${name}/package.json`, { paths: [root] });
    return require(manifest).version;
  } catch {
    return null;
  }
}

const stale = Object.entries(pinned).filter(([name, want]) => installedVersion(name) !== want);
if (stale.length === 0) {
  console.log(`deps: ${Object.keys(pinned).join(', ')} already at the pinned versions`);
  process.exit(0);
}

console.log(`deps: npm ci (missing or other version: ${stale.map(([n, v]) => `${n}@${v}`).join(', ')})`);
const result = spawnSync('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, CDK_DISABLE_CLI_TELEMETRY: 'true', CDK_DISABLE_VERSION_CHECK: '1' },
});
if (result.error) {
  console.error(`deps: could not run npm: ${result.error.message}`);
  process.exit(1);
}
process.exit(result.status ?? 1);
