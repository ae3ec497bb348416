// AppStack: a topic, plus a parameter holding the queue ARN imported from
// SharedStack (a cross-stack reference: Fn::ImportValue in this template).
'use strict';

const cdk = require('aws-cdk-lib');
const sns = require('aws-cdk-lib/aws-sns');
const ssm = require('aws-cdk-lib/aws-ssm');

class AppStack extends cdk.Stack {
  constructor(scope, id, props) {
    super(scope, id, props);

    const topic = new sns.Topic(this, 'Events', {
      displayName: 'Aphex quick start events',
    });

    const queueArn = new ssm.StringParameter(this, 'QueueArnParameter', {
      parameterName: '/aphex-quickstart/queue-arn',
      stringValue: props.queue.queueArn,
    });

    new cdk.CfnOutput(this, 'TopicArn', { value: topic.topicArn });
    new cdk.CfnOutput(this, 'QueueArn', { value: props.queue.queueArn });
    new cdk.CfnOutput(this, 'QueueArnParameterName', { value: queueArn.parameterName });
  }
}

module.exports = { AppStack };
