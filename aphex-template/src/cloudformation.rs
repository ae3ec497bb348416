//! The pipeline's own CloudFormation template (JSON): the artifact bucket and
//! the workflow execution role (IRSA), with least-privilege policies.
//!
//! The role trusts the cluster's OIDC provider, imported from the cluster
//! stack's `<exportPrefix>OIDCProviderArn` export, for exactly
//! `system:serviceaccount:<namespace>:<serviceAccount>`. IAM condition keys
//! name the provider (`<issuer>:sub`), and CloudFormation cannot compute a
//! JSON key, so the trust policy has two forms:
//!
//! - offline ([`pipeline_stack`], what `aphex render` prints): the provider
//!   is not known yet, so the policy is a JSON *string* built with `Fn::Sub`;
//! - discovered ([`pipeline_stack_for`] with the provider's ARN, what a
//!   deploy uses): the issuer is written literally and the policy is a plain
//!   JSON object, which every CloudFormation implementation accepts (LocalStack
//!   rejects the string form). `Principal.Federated` stays an import of the
//!   export in both, so the cluster stack cannot drop an export in use.

use aphex_config::Config;
use serde_json::{Value, json};

/// The metric namespace the role may write to.
pub const METRICS_NAMESPACE: &str = "Aphex";
/// Days before incomplete multipart uploads are aborted.
const ABORT_UPLOADS_DAYS: u32 = 7;

/// The role's trust policy: the offline `Fn::Sub` string, or a plain object
/// with the discovered issuer written into the condition keys.
fn trust_policy(subject: &str, provider: Option<&OidcProviderArn>) -> Value {
    // The principal is imported in both forms: CloudFormation then refuses to
    // delete or change the cluster's export while this stack uses it.
    let provider_arn = json!({"Fn::ImportValue": {"Fn::Sub": "${ClusterExportPrefix}OIDCProviderArn"}});
    match provider {
        Some(provider) => {
            let issuer = provider.issuer();
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {"StringEquals": {
                        (format!("{issuer}:sub")): subject,
                        (format!("{issuer}:aud")): "sts.amazonaws.com",
                    }},
                }],
            })
        }
        None => {
            let trust = format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Federated":"${{ProviderArn}}"}},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{{"StringEquals":{{"${{Issuer}}:sub":"{subject}","${{Issuer}}:aud":"sts.amazonaws.com"}}}}}}]}}"#
            );
            let issuer = json!({"Fn::Select": [1, {"Fn::Split": ["oidc-provider/", provider_arn.clone()]}]});
            json!({"Fn::Sub": [trust, {"ProviderArn": provider_arn, "Issuer": issuer}]})
        }
    }
}

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

/// The pipeline stack's CloudFormation stack name: `aphex-<pipeline>`.
pub fn pipeline_stack_name(config: &Config) -> String {
    format!("aphex-{}", config.pipeline_name())
}

/// An IAM OIDC provider ARN
/// (`arn:<partition>:iam::<account>:oidc-provider/<issuer>`), checked once so
/// the template can name its issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcProviderArn {
    arn: String,
    issuer_at: usize,
}

/// An ARN that is not an IAM OIDC provider's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an IAM OIDC provider ARN (expected arn:<partition>:iam::<account>:oidc-provider/<issuer>); \
     check the cluster stack's OIDCProviderArn export"
)]
pub struct InvalidOidcProviderArn(pub String);

impl OidcProviderArn {
    /// Checks `arn`'s shape: an IAM ARN whose resource is
    /// `oidc-provider/<issuer>` with a non-empty issuer.
    pub fn parse(arn: &str) -> Result<Self, InvalidOidcProviderArn> {
        const MARKER: &str = ":oidc-provider/";
        let invalid = || InvalidOidcProviderArn(arn.to_owned());
        let at = arn.find(MARKER).ok_or_else(invalid)?;
        let fields: Vec<&str> = arn[..at].split(':').collect();
        let is_iam = matches!(fields.as_slice(), ["arn", partition, "iam", "", account]
            if !partition.is_empty() && !account.is_empty());
        let issuer_at = at + MARKER.len();
        if !is_iam || arn[issuer_at..].is_empty() || arn[issuer_at..].contains(char::is_whitespace) {
            return Err(invalid());
        }
        Ok(Self {
            arn: arn.to_owned(),
            issuer_at,
        })
    }

    /// The whole ARN.
    pub fn as_str(&self) -> &str {
        &self.arn
    }

    /// The issuer: what follows `oidc-provider/`, e.g.
    /// `oidc.eks.us-east-1.amazonaws.com/id/ABC`; IAM condition keys start with it.
    pub fn issuer(&self) -> &str {
        &self.arn[self.issuer_at..]
    }
}

/// The offline template (`aphex render`): the OIDC provider is not known, so
/// the trust policy is computed by CloudFormation (`Fn::Sub` string).
pub fn pipeline_stack(config: &Config) -> Value {
    pipeline_stack_for(config, None)
}

/// The template, with the trust policy as a plain object naming `provider`'s
/// issuer when the cluster's OIDC provider has been discovered (deploys), or
/// the offline `Fn::Sub` string form without it.
pub fn pipeline_stack_for(config: &Config, provider: Option<&OidcProviderArn>) -> Value {
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

    let trust = trust_policy(&subject, provider);

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
                // DeleteObject: finalize removes a run's spent stage objects.
                "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging", "s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject"],
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
                "AssumeRolePolicyDocument": trust,
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
