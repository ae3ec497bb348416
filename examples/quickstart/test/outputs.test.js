#!/usr/bin/env node
// The quick start's environment test: reads the stack outputs Aphex hands to
// test commands (APHEX_OUTPUTS_JSON and APHEX_OUTPUT_<STACK>_<KEY>) and fails
// when one is missing or they disagree.
//
//   node test/outputs.test.js [--account 000000000000] [--region us-east-1]
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');

const EXPECTED = {
  QuickstartShared: ['QueueUrl', 'QueueName', 'StageParameterName'],
  QuickstartApp: ['TopicArn', 'QueueArn', 'QueueArnParameterName'],
  QuickstartAudit: ['BucketName', 'ReaderRoleArn'],
};

function arg(name) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

// Same rule as Aphex: upper case, anything not alphanumeric becomes `_`.
function envName(stack, key) {
  return `APHEX_OUTPUT_${stack}_${key}`.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

const failures = [];
function check(name, fn) {
  try {
    fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failures.push(name);
    console.log(`FAIL ${name}: ${e.message}`);
  }
}

const file = process.env.APHEX_OUTPUTS_JSON;
if (!file) {
  console.error('APHEX_OUTPUTS_JSON is not set: run this through Aphex (aphex run --local)');
  process.exit(2);
}
const outputs = JSON.parse(fs.readFileSync(file, 'utf8'));

for (const [stack, keys] of Object.entries(EXPECTED)) {
  for (const key of keys) {
    check(`${stack}.${key} (${envName(stack, key)})`, () => {
      const value = outputs[stack]?.[key];
      assert.ok(value, `missing from APHEX_OUTPUTS_JSON (stacks there: ${Object.keys(outputs).join(', ') || 'none'})`);
      assert.equal(process.env[envName(stack, key)], value);
    });
  }
}

check('the imported queue ARN is the shared queue', () => {
  const arn = outputs.QuickstartApp?.QueueArn ?? '';
  assert.ok(arn.endsWith(`:${outputs.QuickstartShared?.QueueName}`), `${arn} does not name the shared queue`);
});

const account = arg('account');
const region = arg('region');
if (account || region) {
  check(`the stacks landed in ${account ?? '*'} / ${region ?? '*'}`, () => {
    // arn:partition:sns:region:account:name
    const [, , , arnRegion, arnAccount] = (outputs.QuickstartApp?.TopicArn ?? '').split(':');
    if (account) assert.equal(arnAccount, account);
    if (region) assert.equal(arnRegion, region);
  });
}

if (failures.length > 0) {
  console.log(`${failures.length} check(s) failed`);
  process.exit(1);
}
console.log('all outputs present');
