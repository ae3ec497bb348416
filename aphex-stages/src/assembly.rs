//! The CDK cloud assembly reader (pure): `manifest.json` and the asset
//! manifests as `aws-cdk-lib` 2.276 writes them (schema 55). Produces the
//! stacks, their environments, roles, parameters, tags, dependencies and
//! assets that the deployer needs, and their annotations (errors, warnings,
//! notes) that the deploy stage reports. An assembly listing `missing`
//! context is refused: its templates hold the lookups' placeholders.
//! Placeholders such as `${AWS::AccountId}` are kept as written;
//! [`resolve_placeholders`] fills them in.
//!
//! [`read`] is tolerant of what it does not use (unknown fields, artifact
//! types, newer schema versions) and strict about what it does: a stack
//! without a template, an environment that is not `aws://account/region`, a
//! dependency on an artifact that does not exist, an asset it cannot locate
//! are errors naming the file and the artifact or asset.

mod raw;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

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
    /// What the app's constructs reported (`Annotations`: errors, warnings,
    /// notes), in manifest order.
    pub messages: Vec<Message>,
}

/// How serious an annotation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// `aws:cdk:error`: the `cdk` CLI refuses to deploy the stack.
    Error,
    /// `aws:cdk:warning`.
    Warning,
    /// `aws:cdk:info`.
    Info,
}

/// One annotation of a construct of a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its level.
    pub level: Level,
    /// The construct path (`/Stack/Bucket/Resource`).
    pub path: String,
    /// What it says.
    pub text: String,
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

impl AwsEnvironment {
    /// Parses `aws://ACCOUNT/REGION`, the form of an artifact's `environment`.
    pub fn parse(text: &str) -> Option<Self> {
        let (account, region) = text.strip_prefix("aws://")?.split_once('/')?;
        if account.is_empty() || region.is_empty() || region.contains('/') {
            return None;
        }
        Some(Self {
            account: account.to_owned(),
            region: region.to_owned(),
        })
    }

    /// Fills the placeholders of `text` with this environment's account,
    /// region and the region's partition.
    pub fn resolve(&self, text: &str) -> String {
        resolve_placeholders(text, &self.account, &self.region, partition_of(&self.region))
    }
}

impl CloudAssembly {
    /// The stack a configured stack name refers to: an artifact id first,
    /// then a display name (the construct path), then a CloudFormation
    /// stack name (`stackName`).
    pub fn find_stack(&self, name: &str) -> Option<&StackArtifact> {
        self.stacks
            .iter()
            .find(|s| s.id == name)
            .or_else(|| {
                self.stacks
                    .iter()
                    .find(|s| s.display_name.as_deref() == Some(name))
            })
            .or_else(|| self.stacks.iter().find(|s| s.stack_name == name))
    }

    /// Every stack as `id` (plus display name and stack name where they
    /// differ), for messages that list what the assembly has.
    pub fn stack_summary(&self) -> Vec<String> {
        self.stacks
            .iter()
            .map(|s| {
                let mut aliases: Vec<&str> = Vec::new();
                if let Some(display) = s.display_name.as_deref().filter(|d| *d != s.id) {
                    aliases.push(display);
                }
                if s.stack_name != s.id && !aliases.contains(&s.stack_name.as_str()) {
                    aliases.push(&s.stack_name);
                }
                if aliases.is_empty() {
                    s.id.clone()
                } else {
                    format!("{} ({})", s.id, aliases.join(", "))
                }
            })
            .collect()
    }
}

impl StackArtifact {
    /// The file asset (and its destination) that `stackTemplateAssetObjectUrl`
    /// names, i.e. the template to upload before deploying from S3.
    pub fn template_asset(&self) -> Option<(&FileAsset, &FileDestination)> {
        let url = self.stack_template_asset_object_url.as_deref()?;
        let (bucket, key) = url.strip_prefix("s3://")?.split_once('/')?;
        self.assets.files.iter().find_map(|asset| {
            asset
                .destinations
                .iter()
                .find(|d| d.bucket_name == bucket && d.object_key == key)
                .map(|d| (asset, d))
        })
    }
}

/// What can be wrong with a cloud assembly.
#[derive(Debug, thiserror::Error)]
pub enum AssemblyError {
    /// The directory has no `manifest.json`.
    #[error(
        "no cloud assembly in {dir}: {dir}/manifest.json does not exist (a CDK app writes its \
         assembly to $CDK_OUTDIR; a `cdk synth` command needs `--output \"$CDK_OUTDIR\"`)"
    )]
    NoManifest {
        /// The directory that was read.
        dir: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A manifest is not JSON of the expected shape.
    #[error("{path} is not a valid {what}")]
    Json {
        /// The file.
        path: PathBuf,
        /// `cloud assembly manifest` or `asset manifest`.
        what: &'static str,
        /// The parse error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// An artifact of `manifest.json` is incomplete or inconsistent.
    #[error("{path}: artifact `{artifact}`: {problem}")]
    Artifact {
        /// The manifest.
        path: PathBuf,
        /// The artifact id.
        artifact: String,
        /// What is wrong, and where relevant how to fix it.
        problem: String,
    },
    /// An asset of an asset manifest is incomplete or not supported.
    #[error("{path}: asset `{asset}`: {problem}")]
    Asset {
        /// The asset manifest.
        path: PathBuf,
        /// The asset id.
        asset: String,
        /// What is wrong.
        problem: String,
    },
    /// The app looked up context it did not have, so its templates hold
    /// the lookups' placeholder values.
    #[error(
        "{path}: the app looked up CDK context the synth did not have, so its templates hold placeholder values \
         (`dummy-value-for-...`) and are not deployed: {}. Aphex makes no context lookups: commit their values \
         to cdk.context.json (`npx cdk synth` with credentials for the environment's account writes them there), \
         or synthesize with the `cdk` CLI (`synth: npx cdk synth`), which looks them up",
        .missing.join(", ")
    )]
    MissingContext {
        /// The manifest listing them.
        path: PathBuf,
        /// Each missing key, with its provider.
        missing: Vec<String>,
    },
    /// Nested assemblies deeper than any CDK app makes (a loop, most likely).
    #[error("{path}: nested cloud assemblies deeper than {MAX_NESTING} levels")]
    TooDeep {
        /// The manifest at the limit.
        path: PathBuf,
    },
}

/// How deep stages may nest (a CDK app rarely goes past 2).
const MAX_NESTING: usize = 16;

/// Reads the cloud assembly in `dir` (a `cdk.out`): its stacks in manifest
/// order, followed by those of its nested assemblies (stages), depth first.
pub fn read(dir: &Path) -> Result<CloudAssembly, AssemblyError> {
    let manifest_path = dir.join("manifest.json");
    if !manifest_path.is_file() {
        return Err(AssemblyError::NoManifest { dir: dir.to_owned() });
    }
    let mut assemblies = Vec::new();
    collect(dir, 0, &mut assemblies)?;
    // The CDK reports a nested assembly's lookups in the top-level manifest too.
    let top = &assemblies[0];
    if !top.manifest.missing.is_empty() {
        return Err(AssemblyError::MissingContext {
            path: top.path.clone(),
            missing: top
                .manifest
                .missing
                .iter()
                .map(|m| format!("`{}` (provider {})", m.key, m.provider))
                .collect(),
        });
    }
    let version = top.manifest.version.clone();
    // Every stack id, in any assembly: dependencies may only point at these
    // (or at asset manifests, which are not stacks and are dropped).
    let stack_ids: BTreeSet<&str> = assemblies
        .iter()
        .flat_map(|a| a.manifest.artifacts.iter())
        .filter(|(_, artifact)| artifact.kind == raw::STACK)
        .map(|(id, _)| id.as_str())
        .collect();
    let mut stacks = Vec::new();
    for assembly in &assemblies {
        for (id, artifact) in &assembly.manifest.artifacts {
            if artifact.kind == raw::STACK {
                stacks.push(stack(assembly, id, artifact, &stack_ids)?);
            }
        }
    }
    Ok(CloudAssembly {
        dir: dir.to_owned(),
        version,
        stacks,
    })
}

/// One parsed `manifest.json` and where it lives.
struct Loaded {
    dir: PathBuf,
    path: PathBuf,
    manifest: raw::Manifest,
}

impl Loaded {
    fn artifact_error(&self, artifact: &str, problem: impl Into<String>) -> AssemblyError {
        AssemblyError::Artifact {
            path: self.path.clone(),
            artifact: artifact.to_owned(),
            problem: problem.into(),
        }
    }
}

/// Loads `dir/manifest.json` and, depth first, the nested assemblies it names.
fn collect(dir: &Path, depth: usize, into: &mut Vec<Loaded>) -> Result<(), AssemblyError> {
    let path = dir.join("manifest.json");
    if depth > MAX_NESTING {
        return Err(AssemblyError::TooDeep { path });
    }
    let manifest: raw::Manifest = parse_json(&path, "cloud assembly manifest")?;
    let nested: Vec<(String, Option<serde_json::Value>)> = manifest
        .artifacts
        .iter()
        .filter(|(_, a)| a.kind == raw::NESTED_ASSEMBLY)
        .map(|(id, a)| (id.clone(), a.properties.clone()))
        .collect();
    let loaded = Loaded {
        dir: dir.to_owned(),
        path,
        manifest,
    };
    let mut children = Vec::new();
    for (id, properties) in nested {
        let props: raw::NestedAssemblyProperties = properties_of(&loaded, &id, properties)?;
        let child = dir.join(&props.directory_name);
        if !child.join("manifest.json").is_file() {
            return Err(loaded.artifact_error(
                &id,
                format!("nested assembly {} has no manifest.json", child.display()),
            ));
        }
        children.push(child);
    }
    into.push(loaded);
    for child in children {
        collect(&child, depth + 1, into)?;
    }
    Ok(())
}

fn parse_json<T: serde::de::DeserializeOwned>(path: &Path, what: &'static str) -> Result<T, AssemblyError> {
    let bytes = std::fs::read(path).map_err(|source| AssemblyError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| AssemblyError::Json {
        path: path.to_owned(),
        what,
        source,
    })
}

fn properties_of<T: serde::de::DeserializeOwned>(
    assembly: &Loaded,
    id: &str,
    properties: Option<serde_json::Value>,
) -> Result<T, AssemblyError> {
    let value = properties.ok_or_else(|| assembly.artifact_error(id, "has no `properties`"))?;
    serde_json::from_value(value)
        .map_err(|e| assembly.artifact_error(id, format!("invalid `properties`: {e}")))
}

fn stack(
    assembly: &Loaded,
    id: &str,
    artifact: &raw::Artifact,
    stack_ids: &BTreeSet<&str>,
) -> Result<StackArtifact, AssemblyError> {
    let props: raw::StackProperties = properties_of(assembly, id, artifact.properties.clone())?;
    let env_text = artifact
        .environment
        .as_deref()
        .ok_or_else(|| assembly.artifact_error(id, "has no `environment` (expected aws://ACCOUNT/REGION)"))?;
    let environment = AwsEnvironment::parse(env_text).ok_or_else(|| {
        assembly.artifact_error(
            id,
            format!("environment `{env_text}` is not of the form aws://ACCOUNT/REGION"),
        )
    })?;
    let template_file = assembly.dir.join(&props.template_file);
    if !template_file.is_file() {
        return Err(assembly.artifact_error(
            id,
            format!("template file {} does not exist", template_file.display()),
        ));
    }

    let mut dependencies = Vec::new();
    let mut assets = Assets::default();
    for dep in &artifact.dependencies {
        match assembly.manifest.artifacts.get(dep) {
            Some(a) if a.kind == raw::ASSET_MANIFEST => {
                let props: raw::AssetManifestProperties = properties_of(assembly, dep, a.properties.clone())?;
                let more = read_asset_manifest(&assembly.dir.join(&props.file))?;
                assets.files.extend(more.files);
                assets.docker_images.extend(more.docker_images);
            }
            // Other artifact kinds (trees, reports) carry nothing to deploy.
            Some(a) if a.kind != raw::STACK => {}
            _ if stack_ids.contains(dep.as_str()) => {
                if !dependencies.contains(dep) {
                    dependencies.push(dep.clone());
                }
            }
            _ => {
                return Err(assembly.artifact_error(
                    id,
                    format!("depends on `{dep}`, which is not an artifact of this assembly"),
                ));
            }
        }
    }

    let messages = messages(assembly, artifact)?;
    Ok(StackArtifact {
        id: id.to_owned(),
        display_name: artifact.display_name.clone(),
        stack_name: props.stack_name.unwrap_or_else(|| id.to_owned()),
        environment,
        template_file,
        parameters: props.parameters,
        tags: props.tags,
        assume_role_arn: props.assume_role_arn,
        assume_role_external_id: props.assume_role_external_id,
        cloudformation_execution_role_arn: props.cloud_formation_execution_role_arn,
        stack_template_asset_object_url: props.stack_template_asset_object_url,
        requires_bootstrap_stack_version: props.requires_bootstrap_stack_version,
        bootstrap_stack_version_ssm_parameter: props.bootstrap_stack_version_ssm_parameter,
        termination_protection: props.termination_protection,
        dependencies,
        assets,
        messages,
    })
}

/// The annotations in a stack artifact's metadata, inline and in its
/// `additionalMetadataFile`.
fn messages(assembly: &Loaded, artifact: &raw::Artifact) -> Result<Vec<Message>, AssemblyError> {
    let from_file: IndexMap<String, Vec<raw::MetadataEntry>> = match &artifact.additional_metadata_file {
        Some(file) => parse_json(&assembly.dir.join(file), "stack metadata file")?,
        None => IndexMap::new(),
    };
    let mut messages = Vec::new();
    for (path, entries) in artifact.metadata.iter().chain(&from_file) {
        for entry in entries {
            let level = match entry.kind.as_str() {
                "aws:cdk:error" => Level::Error,
                "aws:cdk:warning" => Level::Warning,
                "aws:cdk:info" => Level::Info,
                _ => continue,
            };
            let text = match &entry.data {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            messages.push(Message {
                level,
                path: path.clone(),
                text,
            });
        }
    }
    Ok(messages)
}

/// Reads one asset manifest; source paths are relative to its directory.
fn read_asset_manifest(path: &Path) -> Result<Assets, AssemblyError> {
    let manifest: raw::AssetManifest = parse_json(path, "asset manifest")?;
    let base = path.parent().unwrap_or(Path::new("."));
    let error = |asset: &str, problem: String| AssemblyError::Asset {
        path: path.to_owned(),
        asset: asset.to_owned(),
        problem,
    };
    let mut assets = Assets::default();
    for (id, file) in manifest.files {
        let packaging = match file.source.packaging.as_deref() {
            None | Some("file") => Packaging::File,
            Some("zip") => Packaging::Zip,
            Some(other) => {
                return Err(error(
                    &id,
                    format!("packaging `{other}` is not supported (expected `file` or `zip`)"),
                ));
            }
        };
        let source = match (file.source.path, file.source.executable) {
            (Some(source), _) => base.join(source),
            (None, Some(command)) => {
                return Err(error(
                    &id,
                    format!(
                        "is produced by a command ({}); Aphex publishes only file and directory \
                         assets",
                        command.join(" ")
                    ),
                ));
            }
            (None, None) => {
                return Err(error(
                    &id,
                    "has neither `source.path` nor `source.executable`".into(),
                ));
            }
        };
        if !source.exists() {
            return Err(error(&id, format!("source {} does not exist", source.display())));
        }
        assets.files.push(FileAsset {
            id,
            path: source,
            packaging,
            destinations: file
                .destinations
                .into_iter()
                .map(|(id, d)| FileDestination {
                    id,
                    bucket_name: d.bucket_name,
                    object_key: d.object_key,
                    region: d.region,
                    assume_role_arn: d.assume_role_arn,
                    assume_role_external_id: d.assume_role_external_id,
                })
                .collect(),
        });
    }
    for (id, image) in manifest.docker_images {
        assets.docker_images.push(DockerImageAsset {
            id,
            directory: image.source.directory,
        });
    }
    Ok(assets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn placeholders_are_filled_from_the_environment() {
        let env = AwsEnvironment {
            account: "111111111111".into(),
            region: "cn-north-1".into(),
        };
        assert_eq!(
            env.resolve("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/x-${AWS::Region}"),
            "arn:aws-cn:iam::111111111111:role/x-cn-north-1"
        );
        assert_eq!(
            resolve_placeholders("${AWS::Partition}/${AWS::Partition}", "1", "r", "aws"),
            "aws/aws"
        );
        // Not ours to fill: left as written.
        assert_eq!(env.resolve("${AWS::URLSuffix}"), "${AWS::URLSuffix}");
    }

    #[test]
    fn partitions_follow_the_region() {
        assert_eq!(partition_of("us-east-1"), "aws");
        assert_eq!(partition_of("il-central-1"), "aws");
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition_of("cn-northwest-1"), "aws-cn");
        assert_eq!(partition_of("us-iso-east-1"), "aws-iso");
        assert_eq!(partition_of("us-isob-east-1"), "aws-iso-b");
    }

    #[test]
    fn environments_parse_only_in_the_cdk_form() {
        assert_eq!(
            AwsEnvironment::parse("aws://000000000000/us-east-1"),
            Some(AwsEnvironment {
                account: "000000000000".into(),
                region: "us-east-1".into()
            })
        );
        assert_eq!(
            AwsEnvironment::parse("aws://unknown-account/unknown-region").map(|e| e.account),
            Some("unknown-account".into())
        );
        for bad in [
            "000000000000/us-east-1",
            "aws://",
            "aws://1/",
            "aws:///r",
            "aws://1/r/x",
            "",
        ] {
            assert_eq!(AwsEnvironment::parse(bad), None, "{bad}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        // Property: resolving fills every placeholder and changes nothing
        // else (text without `${` comes back unchanged).
        #[test]
        fn resolving_fills_every_placeholder(
            parts in proptest::collection::vec("[a-z0-9:/-]{0,8}", 1..6),
            account in "[0-9]{12}",
            region in "[a-z]{2}-[a-z]{4,9}-[1-9]",
        ) {
            let placeholders = ["${AWS::AccountId}", "${AWS::Region}", "${AWS::Partition}"];
            let text: String = parts
                .iter()
                .enumerate()
                .map(|(i, p)| format!("{p}{}", placeholders[i % 3]))
                .collect();
            let env = AwsEnvironment { account: account.clone(), region: region.clone() };
            let resolved = env.resolve(&text);
            prop_assert!(!resolved.contains("${"), "left a placeholder in {}", resolved);
            let expected: String = parts
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let value = [account.as_str(), region.as_str(), partition_of(&region)][i % 3];
                    format!("{p}{value}")
                })
                .collect();
            prop_assert_eq!(resolved, expected);
            let plain = parts.concat();
            prop_assert_eq!(env.resolve(&plain), plain);
        }
    }
}
