#!/usr/bin/env node
// Small CDK apps for Aphex's end-to-end and reader tests, one variant per
// run: `node app.js <variant> [--prefix P] [--annotate LEVEL]` (or APHEX_TEST_APP /
// APHEX_TEST_STACK_PREFIX). The account and region come from
// CDK_DEFAULT_ACCOUNT / CDK_DEFAULT_REGION; the assembly goes to CDK_OUTDIR.
//
// The packages come from the quick start's install: NODE_PATH pointing at
// examples/quickstart/node_modules (`cargo xtask npm` installs it).
'use strict';

const { loadCdk } = require('./lib/deps');
const variants = require('./lib/variants');

function arg(name) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

const variant = process.argv[2] && !process.argv[2].startsWith('--')
  ? process.argv[2]
  : process.env.APHEX_TEST_APP;
// The prefix makes CloudFormation stack names unique when several tests share
// one emulator; the artifact ids (what aphex-config.yaml names) stay fixed.
const prefix = arg('prefix') ?? process.env.APHEX_TEST_STACK_PREFIX ?? '';

const build = variants[variant];
if (!build) {
  console.error(`unknown variant ${JSON.stringify(variant)}; one of: ${Object.keys(variants).join(', ')}`);
  process.exit(2);
}

const cdk = loadCdk();
const app = new cdk.App({
  analyticsReporting: false,
  context: { '@aws-cdk/core:defaultCrossStackReferences': 'strong' },
});
const env = { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION };
build(app, { env, prefix, annotate: arg('annotate') });
app.synth();
