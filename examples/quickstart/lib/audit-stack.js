// AuditStack: a bucket and a read-only role. Nothing in the CDK app ties it
// to the other stacks; the order comes from dependsOn in aphex-config.yaml.
'use strict';

const cdk = require('aws-cdk-lib');
const iam = require('aws-cdk-lib/aws-iam');
const s3 = require('aws-cdk-lib/aws-s3');

class AuditStack extends cdk.Stack {
  constructor(scope, id, props) {
    super(scope, id, props);

    const bucket = new s3.Bucket(this, 'AuditLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      removalPolicy: cdk.RemovalPolicy.DESTROY,
    });

    const reader = new iam.Role(this, 'AuditReader', {
      assumedBy: new iam.AccountRootPrincipal(),
      description: 'Reads the Aphex quick start audit bucket',
    });
    bucket.grantRead(reader);

    new cdk.CfnOutput(this, 'BucketName', { value: bucket.bucketName });
    new cdk.CfnOutput(this, 'ReaderRoleArn', { value: reader.roleArn });
  }
}

module.exports = { AuditStack };
