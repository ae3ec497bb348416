//! Cluster discovery: the shared EKS cluster publishes CloudFormation exports
//! named `<prefix>ClusterName`, `<prefix>OIDCProviderArn` and
//! `<prefix>KubectlRoleArn`; `aphex bootstrap` reads them with `ListExports`.

use std::collections::HashMap;

use aws_config::SdkConfig;

use crate::client::AwsError;

/// Export name suffixes, in the order they are reported.
pub const EXPORT_SUFFIXES: [&str; 3] = ["ClusterName", "OIDCProviderArn", "KubectlRoleArn"];

/// What the cluster's exports say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterExports {
    /// EKS cluster name.
    pub cluster_name: String,
    /// ARN of the cluster's IAM OIDC provider (for IRSA roles).
    pub oidc_provider_arn: String,
    /// ARN of a role that may administer the cluster.
    pub kubectl_role_arn: String,
}

/// A failed discovery.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Some exports are missing.
    #[error(
        "cluster discovery with export prefix `{prefix}` expected the CloudFormation exports {} \
         in this account and region, but {} missing; deploy the cluster stack that exports them, \
         or set `pipeline.cluster.exportPrefix` to the prefix it uses",
        expected.join(", "),
        if missing.len() == 1 { format!("{} is", missing[0]) } else { format!("{} are", missing.join(", ")) }
    )]
    Missing {
        /// The prefix used.
        prefix: String,
        /// Every export looked for.
        expected: Vec<String>,
        /// Those not found.
        missing: Vec<String>,
    },
    /// `ListExports` failed.
    #[error("listing CloudFormation exports failed")]
    List(#[source] AwsError),
}

/// The export names looked for with `prefix`.
pub fn expected_exports(prefix: &str) -> Vec<String> {
    EXPORT_SUFFIXES.iter().map(|s| format!("{prefix}{s}")).collect()
}

/// Reads the cluster's exports with `prefix` in `config`'s account and region.
pub async fn discover_cluster(config: &SdkConfig, prefix: &str) -> Result<ClusterExports, DiscoveryError> {
    let client = aws_sdk_cloudformation::Client::new(config);
    let mut exports = HashMap::new();
    let mut pages = client.list_exports().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| DiscoveryError::List(AwsError::new("CloudFormation", "ListExports", e)))?;
        for export in page.exports() {
            if let (Some(name), Some(value)) = (export.name(), export.value()) {
                exports.insert(name.to_owned(), value.to_owned());
            }
        }
    }
    let expected = expected_exports(prefix);
    let missing: Vec<String> = expected
        .iter()
        .filter(|e| !exports.contains_key(*e))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(DiscoveryError::Missing {
            prefix: prefix.to_owned(),
            expected,
            missing,
        });
    }
    let mut take = |name: &String| exports.remove(name).unwrap_or_default();
    Ok(ClusterExports {
        cluster_name: take(&expected[0]),
        oidc_provider_arn: take(&expected[1]),
        kubectl_role_arn: take(&expected[2]),
    })
}
