//! A stand-in for the shared EKS cluster's CloudFormation stack, prepared in
//! the emulator: it exports `<prefix>ClusterName`, `<prefix>OIDCProviderArn`
//! and `<prefix>KubectlRoleArn`, which cluster discovery reads and the
//! pipeline stack imports. No cluster, provider or role is created: only the
//! exports matter to Aphex.

use std::collections::BTreeMap;

use anyhow::Context as _;
use aphex_aws::discovery::ClusterExports;
use aphex_aws::pipeline_stack::{PipelineStack, PipelineStackDeployer};
use aphex_stages::ports::{DeployProgress, StackEvent};
use aws_config::SdkConfig;

/// The OIDC issuer of the fake cluster `name` in `region`.
pub fn issuer(region: &str, name: &str) -> String {
    format!(
        "oidc.eks.{region}.amazonaws.com/id/{}",
        name.to_ascii_uppercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "")
    )
}

/// What the exports of cluster `name` say in `account`/`region`.
pub fn exports(account: &str, region: &str, name: &str) -> ClusterExports {
    ClusterExports {
        cluster_name: name.to_owned(),
        oidc_provider_arn: format!("arn:aws:iam::{account}:oidc-provider/{}", issuer(region, name)),
        kubectl_role_arn: format!("arn:aws:iam::{account}:role/{name}-kubectl"),
    }
}

struct Quiet;

impl DeployProgress for Quiet {
    fn event(&self, _: &StackEvent) {}
}

/// Deploys the stack `aphex-cluster-<name>` exporting cluster `name`'s
/// values with export prefix `AphexCluster-<name>-` (the config's default),
/// with `config`'s credentials, account and region. Running it again
/// changes nothing.
pub async fn prepare_cluster(
    config: &SdkConfig,
    account: &str,
    name: &str,
) -> anyhow::Result<ClusterExports> {
    let region = config.region().map(|r| r.as_ref().to_owned()).unwrap_or_default();
    let values = exports(account, &region, name);
    let prefix = format!("AphexCluster-{name}-");
    let outputs: serde_json::Map<String, serde_json::Value> = [
        ("ClusterName", &values.cluster_name),
        ("OIDCProviderArn", &values.oidc_provider_arn),
        ("KubectlRoleArn", &values.kubectl_role_arn),
    ]
    .into_iter()
    .map(|(suffix, value)| {
        (
            suffix.to_owned(),
            serde_json::json!({ "Value": value, "Export": { "Name": format!("{prefix}{suffix}") } }),
        )
    })
    .collect();
    let template = serde_json::json!({
        "Description": format!("Stand-in for the EKS cluster {name}: its exports only"),
        "Resources": { "Marker": { "Type": "AWS::SSM::Parameter", "Properties": { "Type": "String", "Value": name } } },
        "Outputs": outputs,
    });
    let stack = PipelineStack {
        stack_name: format!("aphex-cluster-{name}"),
        template: template.to_string(),
        parameters: BTreeMap::new(),
        tags: BTreeMap::new(),
        template_bucket: None,
        execution_role_arn: None,
    };
    PipelineStackDeployer::new(config.clone())
        .deploy(&stack, &Quiet)
        .await
        .with_context(|| {
            format!(
                "deploying the stand-in cluster stack {} in {account}",
                stack.stack_name
            )
        })?;
    Ok(values)
}
