//! The pipeline's own CloudFormation template (JSON): the artifact bucket and
//! the workflow execution role (IRSA), with least-privilege policies.
//!
//! The role trusts the cluster's OIDC provider, imported from the cluster
//! stack's `<exportPrefix>OIDCProviderArn` export, for exactly
//! `system:serviceaccount:<namespace>:<serviceAccount>`. IAM condition keys
//! name the provider (`<issuer>:sub`), and CloudFormation cannot compute a
//! JSON key, so the trust policy is a JSON string built with `Fn::Sub`.

use aphex_config::Config;
use serde_json::{Value, json};

/// The metric namespace the role may write to.
pub const METRICS_NAMESPACE: &str = "Aphex";
/// Days before incomplete multipart uploads are aborted.
const ABORT_UPLOADS_DAYS: u32 = 7;

/// The `aphex:pipeline` tag on every resource.
fn tags(config: &Config) -> Value {
    json!([{"Key": "aphex:pipeline", "Value": config.pipeline_name()}])
}

/// The bucket's ARN: the created bucket's, or the configured existing one.
fn bucket_arn(config: &Config) -> Value {
    match bucket_name_setting(config) {
        Some(b) => json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:s3:::{b}")}),
        None => json!({"Fn::GetAtt": ["ArtifactBucket", "Arn"]}),
    }
}

fn bucket_name_setting(config: &Config) -> Option<String> {
    config.settings().artifacts.as_ref()?.bucket.clone()
}

/// The whole template.
pub fn pipeline_stack(config: &Config) -> Value {
    let settings = config.settings();
    let name = config.pipeline_name();
    let subject = format!(
        "system:serviceaccount:{}:{}",
        settings.namespace(),
        settings.service_account(name)
    );
    let mut parameters = serde_json::Map::new();
    let mut prefix = json!({
        "Type": "String",
        "Description": "Prefix of the cluster stack's exports (<prefix>OIDCProviderArn is imported)",
    });
    if let Some(cluster) = &settings.cluster {
        prefix["Default"] = json!(cluster.export_prefix());
    }
    parameters.insert("ClusterExportPrefix".into(), prefix);
    let webhook_default = settings
        .github
        .as_ref()
        .and_then(|g| g.webhook_url.clone())
        .unwrap_or_default();
    parameters.insert(
        "WebhookUrl".into(),
        json!({
            "Type": "String",
            "Default": webhook_default,
            "Description": "Public URL of the GitHub webhook (empty: not exposed yet)",
        }),
    );

    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Federated":"${{ProviderArn}}"}},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{{"StringEquals":{{"${{Issuer}}:sub":"{subject}","${{Issuer}}:aud":"sts.amazonaws.com"}}}}}}]}}"#
    );
    let provider_arn = json!({"Fn::ImportValue": {"Fn::Sub": "${ClusterExportPrefix}OIDCProviderArn"}});
    let issuer = json!({"Fn::Select": [1, {"Fn::Split": ["oidc-provider/", provider_arn.clone()]}]});

    let mut assumable = vec![json!("arn:*:iam::*:role/cdk-*")];
    for env in &config.environments {
        if let Some(arn) = &env.role_arn {
            let v = json!(arn);
            if !assumable.contains(&v) {
                assumable.push(v);
            }
        }
    }
    let object_arn = json!({"Fn::Join": ["", [bucket_arn(config), format!("/{name}/*")]]});
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ArtifactObjects",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging", "s3:PutObject", "s3:PutObjectTagging"],
                "Resource": [object_arn],
            },
            {
                "Sid": "ArtifactBucket",
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": [bucket_arn(config)],
            },
            {
                "Sid": "CloudFormationRead",
                "Effect": "Allow",
                "Action": [
                    "cloudformation:DescribeStacks",
                    "cloudformation:DescribeStackEvents",
                    "cloudformation:DescribeChangeSet",
                    "cloudformation:GetTemplate",
                    "cloudformation:ListExports",
                    "cloudformation:ValidateTemplate",
                ],
                "Resource": "*",
            },
            {
                "Sid": "CloudFormationOwnStack",
                "Effect": "Allow",
                "Action": [
                    "cloudformation:CreateChangeSet",
                    "cloudformation:ExecuteChangeSet",
                    "cloudformation:DeleteChangeSet",
                ],
                "Resource": {"Fn::Sub": "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/${AWS::StackName}/*"},
            },
            {
                "Sid": "AssumeDeployRoles",
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": assumable,
            },
            {
                "Sid": "Metrics",
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
            },
        ],
    });

    let mut resources = serde_json::Map::new();
    if bucket_name_setting(config).is_none() {
        let days = settings.retention_days();
        resources.insert(
            "ArtifactBucket".into(),
            json!({
                "Type": "AWS::S3::Bucket",
                // Artifacts are the audit trail of what was deployed.
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                        // SSE-S3: no KMS key policy for the role to need.
                        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}},
                    ]},
                    "VersioningConfiguration": {"Status": "Enabled"},
                    "PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": true,
                        "BlockPublicPolicy": true,
                        "IgnorePublicAcls": true,
                        "RestrictPublicBuckets": true,
                    },
                    "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                    "LifecycleConfiguration": {"Rules": [{
                        "Id": "ExpireArtifacts",
                        "Status": "Enabled",
                        "ExpirationInDays": days,
                        "NoncurrentVersionExpiration": {"NoncurrentDays": days},
                        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_UPLOADS_DAYS},
                    }]},
                    "Tags": tags(config),
                },
            }),
        );
        resources.insert(
            "ArtifactBucketPolicy".into(),
            json!({
                "Type": "AWS::S3::BucketPolicy",
                "Properties": {
                    "Bucket": {"Ref": "ArtifactBucket"},
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                        "Sid": "DenyInsecureTransport",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [
                            {"Fn::GetAtt": ["ArtifactBucket", "Arn"]},
                            {"Fn::Join": ["", [{"Fn::GetAtt": ["ArtifactBucket", "Arn"]}, "/*"]]},
                        ],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }]},
                },
            }),
        );
    }
    resources.insert(
        "WorkflowExecutionRole".into(),
        json!({
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": format!("Aphex pipeline {name}: the workflow pods' role (IRSA)"),
                "AssumeRolePolicyDocument": {"Fn::Sub": [trust, {"ProviderArn": provider_arn, "Issuer": issuer}]},
                "MaxSessionDuration": 43200,
                "Policies": [{"PolicyName": "aphex-pipeline", "PolicyDocument": policy}],
                "Tags": tags(config),
            },
        }),
    );
    let bucket_name = match bucket_name_setting(config) {
        Some(b) => json!(b),
        None => json!({"Ref": "ArtifactBucket"}),
    };
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("Aphex pipeline {name}: artifact bucket and workflow execution role"),
        "Parameters": parameters,
        "Conditions": {"HasWebhookUrl": {"Fn::Not": [{"Fn::Equals": [{"Ref": "WebhookUrl"}, ""]}]}},
        "Resources": resources,
        "Outputs": {
            "ArtifactBucketName": {"Description": "Bucket holding build artifacts and run records", "Value": bucket_name},
            "WorkflowExecutionRoleArn": {
                "Description": "Role the workflow pods assume (IRSA annotation of the executor ServiceAccount)",
                "Value": {"Fn::GetAtt": ["WorkflowExecutionRole", "Arn"]},
            },
            "WebhookUrl": {
                "Condition": "HasWebhookUrl",
                "Description": "Where GitHub delivers webhooks",
                "Value": {"Ref": "WebhookUrl"},
            },
        },
    })
}
