#!/usr/bin/env node
// The quick start's CDK app: three stacks in one environment. The account
// and region come from CDK_DEFAULT_ACCOUNT / CDK_DEFAULT_REGION, which
// Aphex sets per environment before it synthesizes.
'use strict';

const cdk = require('aws-cdk-lib');
const { SharedStack } = require('../lib/shared-stack');
const { AppStack } = require('../lib/app-stack');
const { AuditStack } = require('../lib/audit-stack');

const env = {
  account: process.env.CDK_DEFAULT_ACCOUNT,
  region: process.env.CDK_DEFAULT_REGION,
};

const app = new cdk.App({
  // No AWS::CDK::Metadata resource: smaller templates, nothing phoned home.
  analyticsReporting: false,
  // Set here rather than in cdk.json so that running the app directly
  // (`node bin/app.js`, as aphex-config.yaml does) synthesizes the same way.
  context: { '@aws-cdk/core:defaultCrossStackReferences': 'strong' },
});

const shared = new SharedStack(app, 'QuickstartShared', { env });
// AppStack reads the queue ARN from SharedStack: the CDK turns that into an
// export/import pair and records the dependency in the cloud assembly.
new AppStack(app, 'QuickstartApp', { env, queue: shared.queue });
// AuditStack has no CDK-level dependency; aphex-config.yaml orders it after
// QuickstartApp with dependsOn.
new AuditStack(app, 'QuickstartAudit', { env });

cdk.Tags.of(app).add('aphex:example', 'quickstart');
app.synth();
