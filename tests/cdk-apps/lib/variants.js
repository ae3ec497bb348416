// The variants of the test app. Every resource is one the local emulator
// (LocalStack core) deploys faithfully; no physical names are set, so stacks
// with different prefixes never collide.
'use strict';

const path = require('node:path');
const { load, loadCdk } = require('./deps');

const cdk = loadCdk();
const ssm = load('aws-cdk-lib/aws-ssm');
const sqs = load('aws-cdk-lib/aws-sqs');
const s3assets = load('aws-cdk-lib/aws-s3-assets');
const ecrAssets = load('aws-cdk-lib/aws-ecr-assets');

const ASSETS = path.join(__dirname, '..', 'assets');

/** A stack holding one SSM parameter, with its name as an output. */
function parameterStack(scope, id, { env, prefix }, value) {
  const stack = new cdk.Stack(scope, id, { env, stackName: `${prefix}${id}` });
  const param = new ssm.StringParameter(stack, 'Value', { stringValue: value });
  new cdk.CfnOutput(stack, 'ParameterName', { value: param.parameterName });
  return stack;
}

/** GoodBefore, Broken, GoodAfter: Broken fails on create (SSM rejects the type). */
function failing(app, opts) {
  parameterStack(app, 'GoodBefore', opts, 'before');
  const broken = new cdk.Stack(app, 'Broken', { env: opts.env, stackName: `${opts.prefix}Broken` });
  // The synth-time template check warns about the type too (W3030): expected.
  new cdk.CfnResource(broken, 'BogusParameter', {
    type: 'AWS::SSM::Parameter',
    properties: { Type: 'Bogus', Value: 'never stored' },
  });
  parameterStack(app, 'GoodAfter', opts, 'after');
}

/** LargeTemplate: over 51,200 bytes, so it must deploy through S3. */
function large(app, opts) {
  const stack = parameterStack(app, 'LargeTemplate', opts, 'large');
  // Template Metadata costs nothing to deploy but counts towards the size.
  const padding = Array.from({ length: 700 }, (_, i) =>
    `line ${String(i).padStart(3, '0')}: padding that takes this template past the 51,200-byte TemplateBody limit`);
  stack.templateOptions.metadata = { 'Aphex::Padding': padding };
}

/** Single: one stack, for the cross-account synth test. */
function single(app, opts) {
  parameterStack(app, 'Single', opts, 'single');
}

/** Parallel1..Parallel6: independent stacks for the concurrency tests. */
function parallel(app, opts) {
  for (let i = 1; i <= 6; i += 1) {
    const stack = parameterStack(app, `Parallel${i}`, opts, `parallel-${i}`);
    const queue = new sqs.Queue(stack, 'Queue', { removalPolicy: cdk.RemovalPolicy.DESTROY });
    new cdk.CfnOutput(stack, 'QueueUrl', { value: queue.queueUrl });
  }
}

/**
 * For the cloud assembly reader: file assets (a zipped directory and a single
 * file), a docker image asset (synthesized, never built), a stack with its own
 * stackName, termination protection and tags, one depending on another, and a
 * stage (a nested assembly).
 */
function assets(app, opts) {
  const files = new cdk.Stack(app, 'FileAssets', {
    env: opts.env,
    stackName: `${opts.prefix}aphex-fixture-files`,
    terminationProtection: true,
    tags: { team: 'aphex', purpose: 'fixture' },
    description: 'File assets for the cloud assembly reader tests',
  });
  const site = new s3assets.Asset(files, 'Site', { path: path.join(ASSETS, 'site') });
  const config = new s3assets.Asset(files, 'Config', { path: path.join(ASSETS, 'config.json') });
  new ssm.StringParameter(files, 'ConfigLocation', { stringValue: config.s3ObjectUrl });
  new cdk.CfnOutput(files, 'SiteUrl', { value: site.s3ObjectUrl, exportName: `${opts.prefix}SiteUrl` });
  new cdk.CfnOutput(files, 'ConfigUrl', { value: config.s3ObjectUrl });

  const images = new cdk.Stack(app, 'DockerAssets', { env: opts.env, stackName: `${opts.prefix}DockerAssets` });
  const image = new ecrAssets.DockerImageAsset(images, 'Image', { directory: path.join(ASSETS, 'image') });
  new ssm.StringParameter(images, 'ImageLocation', { stringValue: image.imageUri });
  new cdk.CfnOutput(images, 'ImageUri', { value: image.imageUri });

  // Reads the export of FileAssets: a dependency the assembly records.
  const consumer = new cdk.Stack(app, 'Consumer', { env: opts.env, stackName: `${opts.prefix}Consumer` });
  new ssm.StringParameter(consumer, 'SiteUrl', { stringValue: cdk.Fn.importValue(`${opts.prefix}SiteUrl`) });
  consumer.addStackDependency(files);

  const stage = new cdk.Stage(app, 'Staged', { env: opts.env });
  parameterStack(stage, 'Inner', opts, 'inside a stage');
}

/**
 * Context: one stack whose values come from the CDK context, as outputs: a
 * key of cdk.json's `context` and an SSM lookup, which a synth without
 * cdk.context.json reports missing (and fills with a dummy value).
 */
function context(app, opts) {
  const stack = new cdk.Stack(app, 'Context', { env: opts.env, stackName: `${opts.prefix}Context` });
  const greeting = stack.node.tryGetContext('aphex-test:greeting') ?? 'no context';
  const lookedUp = ssm.StringParameter.valueFromLookup(stack, '/aphex-test/looked-up');
  const param = new ssm.StringParameter(stack, 'Value', { stringValue: `${greeting} / ${lookedUp}` });
  new cdk.CfnOutput(stack, 'ParameterName', { value: param.parameterName });
  new cdk.CfnOutput(stack, 'Greeting', { value: greeting });
  new cdk.CfnOutput(stack, 'LookedUp', { value: lookedUp });
}

/**
 * Annotated: one stack whose parameter carries an annotation of the level
 * `--annotate` names (`error`, `warning`), as a checker such as cdk-nag adds
 * them; `cdk deploy` refuses a stack with an error.
 */
function annotated(app, opts) {
  const stack = parameterStack(app, 'Annotated', opts, 'annotated');
  const param = stack.node.findChild('Value');
  const text = 'AphexTest-P1: the parameter has no description';
  if (opts.annotate === 'error') {
    cdk.Annotations.of(param).addError(text);
  } else if (opts.annotate === 'warning') {
    cdk.Annotations.of(param).addWarningV2('aphex-test:p1', text);
  }
}

module.exports = { failing, large, single, parallel, assets, context, annotated };
