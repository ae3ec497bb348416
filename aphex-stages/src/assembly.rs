//! The CDK cloud assembly reader (pure): `manifest.json` and the asset
//! manifests as `aws-cdk-lib` 2.276 writes them (schema 55). Produces the
//! stacks, their environments, roles, parameters, tags, dependencies and
//! assets that the deployer needs. Placeholders such as `${AWS::AccountId}`
//! are kept as written; [`resolve_placeholders`] fills them in.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// A synthesized cloud assembly (a `cdk.out` directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudAssembly {
    /// The assembly directory.
    pub dir: PathBuf,
    /// Cloud assembly schema version from `manifest.json`.
    pub version: String,
    /// Stack artifacts, in manifest order.
    pub stacks: Vec<StackArtifact>,
}

/// The target account and region of a stack (may hold `unknown-account` /
/// `unknown-region` for environment-agnostic stacks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsEnvironment {
    /// Account ID or `unknown-account`.
    pub account: String,
    /// Region or `unknown-region`.
    pub region: String,
}

/// One `aws:cloudformation:stack` artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackArtifact {
    /// Artifact id (the key in `manifest.json`'s `artifacts`).
    pub id: String,
    /// Display name (the construct path), when given.
    pub display_name: Option<String>,
    /// CloudFormation stack name: `properties.stackName`, else the artifact id.
    pub stack_name: String,
    /// Target environment.
    pub environment: AwsEnvironment,
    /// Template file, absolute (inside the assembly dir).
    pub template_file: PathBuf,
    /// CloudFormation parameters.
    pub parameters: BTreeMap<String, String>,
    /// Stack tags.
    pub tags: BTreeMap<String, String>,
    /// Role to assume for the deploy (placeholders unresolved).
    pub assume_role_arn: Option<String>,
    /// External id for assuming `assume_role_arn`.
    pub assume_role_external_id: Option<String>,
    /// Role CloudFormation itself uses (placeholders unresolved).
    pub cloudformation_execution_role_arn: Option<String>,
    /// Template already uploaded as an asset (placeholders unresolved).
    pub stack_template_asset_object_url: Option<String>,
    /// Minimum bootstrap stack version the deploy role needs.
    pub requires_bootstrap_stack_version: Option<u32>,
    /// SSM parameter holding the bootstrap version.
    pub bootstrap_stack_version_ssm_parameter: Option<String>,
    /// Termination protection.
    pub termination_protection: bool,
    /// Ids of the stack artifacts this stack depends on (`.assets` artifacts filtered out).
    pub dependencies: Vec<String>,
    /// The stack's assets, from its asset manifest artifact (empty when none).
    pub assets: Assets,
}

/// The assets one stack needs published before it deploys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assets {
    /// File assets.
    pub files: Vec<FileAsset>,
    /// Docker image assets (not published by the native deployer).
    pub docker_images: Vec<DockerImageAsset>,
}

/// How a file asset is packaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packaging {
    /// Upload the file as is.
    File,
    /// Zip the directory (deterministically).
    Zip,
}

/// A file asset and where it must be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAsset {
    /// Asset id (usually a content hash).
    pub id: String,
    /// Source path, absolute (inside the assembly dir).
    pub path: PathBuf,
    /// Packaging.
    pub packaging: Packaging,
    /// Destinations (placeholders unresolved).
    pub destinations: Vec<FileDestination>,
}

/// Where one file asset goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDestination {
    /// Destination id (e.g. `current_account-current_region`).
    pub id: String,
    /// Bucket name.
    pub bucket_name: String,
    /// Object key.
    pub object_key: String,
    /// Region, when given.
    pub region: Option<String>,
    /// Role to assume for publishing.
    pub assume_role_arn: Option<String>,
    /// External id for that role.
    pub assume_role_external_id: Option<String>,
}

/// A docker image asset (reported, never published, by the native deployer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerImageAsset {
    /// Asset id.
    pub id: String,
    /// Build directory.
    pub directory: Option<String>,
}

/// Fills `${AWS::AccountId}`, `${AWS::Region}` and `${AWS::Partition}`.
pub fn resolve_placeholders(text: &str, account: &str, region: &str, partition: &str) -> String {
    text.replace("${AWS::AccountId}", account)
        .replace("${AWS::Region}", region)
        .replace("${AWS::Partition}", partition)
}

/// The partition of `region` (`aws`, `aws-cn`, `aws-us-gov`, ...).
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else {
        "aws"
    }
}
