#!/usr/bin/env node
// The quick start's build: checks every stack module loads, then writes
// artifacts/: a manifest of the sources with their SHA-256 and the pinned CDK
// versions. Aphex packages artifacts/ and restores it before each deploy.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const out = path.join(root, 'artifacts');

const sources = ['bin/app.js', ...fs.readdirSync(path.join(root, 'lib')).map((f) => `lib/${f}`)]
  .filter((f) => f.endsWith('.js'))
  .sort();

for (const file of sources.filter((f) => f.startsWith('lib/'))) {
  // Loading the module catches syntax errors before anything deploys.
  require(path.join(root, file));
}

const files = sources.map((file) => ({
  path: file,
  sha256: crypto.createHash('sha256').update(fs.readFileSync(path.join(root, file))).digest('hex'),
}));

const pkg = require(path.join(root, 'package.json'));
const manifest = {
  name: pkg.name,
  version: pkg.version,
  dependencies: { ...pkg.dependencies, ...pkg.devDependencies },
  files,
};

fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, 'build-manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
console.log(`build: ${files.length} sources -> artifacts/build-manifest.json`);
