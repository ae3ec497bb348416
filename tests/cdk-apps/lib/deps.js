// Finds aws-cdk-lib: NODE_PATH first (how the tests run a copy of this app),
// then the quick start's install when running inside the repository.
'use strict';

const path = require('node:path');

const IN_TREE = path.resolve(__dirname, '../../../examples/quickstart/node_modules');

function load(name) {
  try {
    return require(name);
  } catch (e) {
    if (e.code !== 'MODULE_NOT_FOUND') throw e;
  }
  try {
    return require(path.join(IN_TREE, name));
  } catch (e) {
    if (e.code !== 'MODULE_NOT_FOUND') throw e;
    throw new Error(
      `cannot find ${name}: set NODE_PATH to <repo>/examples/quickstart/node_modules (run \`cargo xtask npm\` first)`,
    );
  }
}

function loadCdk() {
  return load('aws-cdk-lib');
}

module.exports = { load, loadCdk };
