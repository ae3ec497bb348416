//! The pipeline's own CloudFormation template (JSON): the artifact bucket,
//! the workflow execution role and the pull-request role (both IRSA), with
//! least-privilege policies:
//!
//! - the workflow role may assume, per configured environment, only that
//!   account's CDK bootstrap deploy, file-publishing and lookup roles (in
//!   that region) and the environment's `roleArn`, plus its own account's
//!   deploy role (the pipeline stage deploys this stack through it); it changes only its own
//!   stack, writes only under `<pipeline>/` in the bucket, and puts metrics
//!   only in the namespace `Aphex/<pipeline>` (`cloudwatch:namespace`);
//! - the pull-request role (what `validate-pr` runs as) may assume only the
//!   lookup roles (synth), reads and writes only under `<pipeline>/pr/`, and
//!   changes no stack.
//!
//! Each role trusts the cluster's OIDC provider, imported from the cluster
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

/// The CDK bootstrap qualifier Aphex expects (the CDK default).
pub const CDK_QUALIFIER: &str = "hnb659fds";
/// The CDK bootstrap roles the workflow role may assume in each environment.
pub const DEPLOY_BOOTSTRAP_ROLES: [&str; 3] = ["deploy-role", "file-publishing-role", "lookup-role"];
/// Where the pull-request role may write, under the pipeline's prefix.
pub const PULL_REQUEST_PREFIX: &str = "pr";
/// A session of the roles lasts an hour (the minimum): the SDK renews web
/// identity sessions itself, and chained sessions last an hour anyway.
const MAX_SESSION_SECONDS: u32 = 3600;

/// The AWS partition of `region` (`aws`, `aws-cn`, `aws-us-gov`, ...).
pub fn partition(region: &str) -> &'static str {
    const PREFIXES: [(&str, &str); 7] = [
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-iso-", "aws-iso"),
        ("eu-isoe-", "aws-iso-e"),
        ("us-isof-", "aws-iso-f"),
        ("eusc-", "aws-eusc"),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or("aws", |(_, partition)| partition)
}

/// The CloudWatch namespace of a pipeline's metrics: `Aphex/<pipeline>`,
/// pinned by the roles' `cloudwatch:namespace` condition, so one pipeline
/// cannot write another's.
pub fn metrics_namespace(pipeline: &str) -> String {
    format!("Aphex/{pipeline}")
}
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

/// The roles of `kinds` (`deploy-role`, ...) of every configured
/// environment's CDK bootstrap, in its account and region, plus the
/// environments' `roleArn`s when `with_role_arns`; each once, in config order.
fn assumable_roles(config: &Config, kinds: &[&str], with_role_arns: bool) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut push = |v: Value| {
        if !out.contains(&v) {
            out.push(v);
        }
    };
    for env in &config.environments {
        for kind in kinds {
            push(json!(format!(
                "arn:{partition}:iam::{account}:role/cdk-{CDK_QUALIFIER}-{kind}-{account}-{region}",
                partition = partition(&env.region),
                account = env.account,
                region = env.region,
            )));
        }
        if with_role_arns && let Some(arn) = &env.role_arn {
            push(json!(arn));
        }
    }
    out
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
        crate::rbac::workflow_service_account(config)
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

    let mut assumable = assumable_roles(config, &DEPLOY_BOOTSTRAP_ROLES, true);
    // The pipeline stage deploys this stack through its home account's CDK
    // deploy role (the home account need not be an environment's).
    assumable.push(json!({"Fn::Sub": format!(
        "arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/cdk-{CDK_QUALIFIER}-deploy-role-${{AWS::AccountId}}-${{AWS::Region}}"
    )}));
    let pr_assumable = assumable_roles(config, &["lookup-role"], false);
    let pr_subject = format!(
        "system:serviceaccount:{}:{}",
        settings.namespace(),
        crate::rbac::pull_request_service_account(config)
    );
    let pr_trust = trust_policy(&pr_subject, provider);
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
                // Only the pipeline stage deploys with this role, and only
                // its own stack: the application's stacks are deployed by
                // the roles assumed below.
                "Sid": "CloudFormationOwnStack",
                "Effect": "Allow",
                "Action": [
                    "cloudformation:DescribeStacks",
                    "cloudformation:DescribeStackEvents",
                    "cloudformation:DescribeChangeSet",
                    "cloudformation:CreateChangeSet",
                    "cloudformation:ExecuteChangeSet",
                    "cloudformation:DeleteChangeSet",
                ],
                "Resource": {"Fn::Sub": "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/${AWS::StackName}/*"},
            },
            {
                // Finding the cluster's exports; ListExports has no resource.
                "Sid": "ClusterDiscovery",
                "Effect": "Allow",
                "Action": "cloudformation:ListExports",
                "Resource": "*",
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
                "Condition": {"StringEquals": {"cloudwatch:namespace": metrics_namespace(name)}},
            },
        ],
    });
    let pr_object_arn =
        json!({"Fn::Join": ["", [bucket_arn(config), format!("/{name}/{PULL_REQUEST_PREFIX}/*")]]});
    let pr_policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PullRequestObjects",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging", "s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject"],
                "Resource": [pr_object_arn],
            },
            {
                "Sid": "PullRequestListing",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": [bucket_arn(config)],
                "Condition": {"StringLike": {"s3:prefix": [format!("{name}/{PULL_REQUEST_PREFIX}/*")]}},
            },
            {
                "Sid": "ArtifactBucketLocation",
                "Effect": "Allow",
                "Action": "s3:GetBucketLocation",
                "Resource": [bucket_arn(config)],
            },
            {
                // Synthesizing reads context through the lookup roles; no
                // deploy or publishing role is reachable from a pull request.
                "Sid": "AssumeLookupRoles",
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": pr_assumable,
            },
            {
                "Sid": "Metrics",
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": metrics_namespace(name)}},
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
                "MaxSessionDuration": MAX_SESSION_SECONDS,
                "Policies": [{"PolicyName": "aphex-pipeline", "PolicyDocument": policy}],
                "Tags": tags(config),
            },
        }),
    );
    resources.insert(
        "PullRequestRole".into(),
        json!({
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": format!("Aphex pipeline {name}: the pull-request validation pods' role (IRSA), read-only"),
                "AssumeRolePolicyDocument": pr_trust,
                "MaxSessionDuration": MAX_SESSION_SECONDS,
                "Policies": [{"PolicyName": "aphex-pull-request", "PolicyDocument": pr_policy}],
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
        "Description": format!("Aphex pipeline {name}: artifact bucket, workflow execution role and pull-request role"),
        "Parameters": parameters,
        "Conditions": {"HasWebhookUrl": {"Fn::Not": [{"Fn::Equals": [{"Ref": "WebhookUrl"}, ""]}]}},
        "Resources": resources,
        "Outputs": {
            "ArtifactBucketName": {"Description": "Bucket holding build artifacts and run records", "Value": bucket_name},
            "WorkflowExecutionRoleArn": {
                "Description": "Role the workflow pods assume (IRSA annotation of the executor ServiceAccount)",
                "Value": {"Fn::GetAtt": ["WorkflowExecutionRole", "Arn"]},
            },
            "PullRequestRoleArn": {
                "Description": "Role the validate-pr pods assume (IRSA annotation of the pull-request ServiceAccount)",
                "Value": {"Fn::GetAtt": ["PullRequestRole", "Arn"]},
            },
            "WebhookUrl": {
                "Condition": "HasWebhookUrl",
                "Description": "Where GitHub delivers webhooks",
                "Value": {"Ref": "WebhookUrl"},
            },
        },
    })
}
