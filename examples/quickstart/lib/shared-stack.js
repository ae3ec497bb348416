// SharedStack: a queue and a parameter other stacks build on. Its queue ARN
// is exported (by the CDK) because AppStack references it.
'use strict';

const cdk = require('aws-cdk-lib');
const sqs = require('aws-cdk-lib/aws-sqs');
const ssm = require('aws-cdk-lib/aws-ssm');

class SharedStack extends cdk.Stack {
  constructor(scope, id, props) {
    super(scope, id, props);

    this.queue = new sqs.Queue(this, 'WorkQueue', {
      retentionPeriod: cdk.Duration.days(4),
      removalPolicy: cdk.RemovalPolicy.DESTROY,
    });

    const stage = new ssm.StringParameter(this, 'StageParameter', {
      parameterName: '/aphex-quickstart/stage',
      stringValue: 'shared-ready',
      description: 'Written by the Aphex quick start',
    });

    new cdk.CfnOutput(this, 'QueueUrl', { value: this.queue.queueUrl });
    new cdk.CfnOutput(this, 'QueueName', { value: this.queue.queueName });
    new cdk.CfnOutput(this, 'StageParameterName', { value: stage.parameterName });
  }
}

module.exports = { SharedStack };
