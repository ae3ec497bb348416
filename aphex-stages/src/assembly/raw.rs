//! The on-disk shapes of `manifest.json` and of asset manifests (`*.assets.json`),
//! as serde structs. Unknown fields are ignored: every schema version adds
//! some, and the reader only needs these.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::Deserialize;

/// `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Manifest {
    pub version: String,
    #[serde(default)]
    pub artifacts: IndexMap<String, Artifact>,
    /// Context the app looked up and did not have.
    #[serde(default)]
    pub missing: Vec<MissingContext>,
}

/// One metadata entry of a construct path; `data`'s shape depends on `type`.
#[derive(Debug, Deserialize)]
pub(super) struct MetadataEntry {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

/// One entry of `missing`.
#[derive(Debug, Deserialize)]
pub(super) struct MissingContext {
    pub key: String,
    pub provider: String,
}

/// One entry of `artifacts`. `properties` stays raw until the type says
/// what it holds.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Artifact {
    #[serde(rename = "type")]
    pub kind: String,
    pub environment: Option<String>,
    #[serde(default)]
    pub dependencies: Vec<String>,
    pub properties: Option<serde_json::Value>,
    pub display_name: Option<String>,
    /// Construct path to its metadata entries, inline...
    #[serde(default)]
    pub metadata: IndexMap<String, Vec<MetadataEntry>>,
    /// ...or in a file of the same shape (newer schemas).
    pub additional_metadata_file: Option<String>,
}

pub(super) const STACK: &str = "aws:cloudformation:stack";
pub(super) const ASSET_MANIFEST: &str = "cdk:asset-manifest";
pub(super) const NESTED_ASSEMBLY: &str = "cdk:cloud-assembly";

/// `properties` of an `aws:cloudformation:stack` artifact.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StackProperties {
    pub template_file: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub stack_name: Option<String>,
    #[serde(default)]
    pub termination_protection: bool,
    pub assume_role_arn: Option<String>,
    pub assume_role_external_id: Option<String>,
    pub cloud_formation_execution_role_arn: Option<String>,
    pub stack_template_asset_object_url: Option<String>,
    pub requires_bootstrap_stack_version: Option<u32>,
    pub bootstrap_stack_version_ssm_parameter: Option<String>,
}

/// `properties` of a `cdk:asset-manifest` artifact.
#[derive(Debug, Deserialize)]
pub(super) struct AssetManifestProperties {
    pub file: String,
}

/// `properties` of a `cdk:cloud-assembly` (nested assembly) artifact.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct NestedAssemblyProperties {
    pub directory_name: String,
}

/// An asset manifest (`<stack>.assets.json`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AssetManifest {
    #[serde(default)]
    pub files: IndexMap<String, FileAsset>,
    #[serde(default)]
    pub docker_images: IndexMap<String, DockerImageAsset>,
}

#[derive(Debug, Deserialize)]
pub(super) struct FileAsset {
    pub source: FileSource,
    #[serde(default)]
    pub destinations: IndexMap<String, FileDestination>,
}

#[derive(Debug, Deserialize)]
pub(super) struct FileSource {
    pub path: Option<String>,
    pub executable: Option<Vec<String>>,
    pub packaging: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FileDestination {
    pub bucket_name: String,
    pub object_key: String,
    pub region: Option<String>,
    pub assume_role_arn: Option<String>,
    pub assume_role_external_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct DockerImageAsset {
    pub source: DockerImageSource,
}

#[derive(Debug, Deserialize)]
pub(super) struct DockerImageSource {
    pub directory: Option<String>,
}
