//! Stop-gap reader of the stack artifacts of a cloud assembly, used until
//! `crate::assembly::read` lands; then this file goes.

use std::path::Path;

use crate::assembly::{Assets, AwsEnvironment, CloudAssembly, StackArtifact};

/// Reads `dir/manifest.json`'s stack artifacts (no assets, no roles).
pub fn read(dir: &Path) -> Result<CloudAssembly, String> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let m: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let artifacts = m["artifacts"].as_object().cloned().unwrap_or_default();
    let is_stack = |id: &str| {
        artifacts
            .get(id)
            .is_some_and(|a| a["type"] == "aws:cloudformation:stack")
    };
    let mut stacks = Vec::new();
    for (id, a) in &artifacts {
        if a["type"] != "aws:cloudformation:stack" {
            continue;
        }
        let env = a["environment"]
            .as_str()
            .unwrap_or("aws://unknown-account/unknown-region");
        let mut parts = env.trim_start_matches("aws://").splitn(2, '/');
        let props = &a["properties"];
        stacks.push(StackArtifact {
            id: id.clone(),
            display_name: a["displayName"].as_str().map(str::to_owned),
            stack_name: props["stackName"].as_str().unwrap_or(id).to_owned(),
            environment: AwsEnvironment {
                account: parts.next().unwrap_or_default().to_owned(),
                region: parts.next().unwrap_or_default().to_owned(),
            },
            template_file: dir.join(props["templateFile"].as_str().unwrap_or_default()),
            parameters: Default::default(),
            tags: Default::default(),
            assume_role_arn: None,
            assume_role_external_id: None,
            cloudformation_execution_role_arn: None,
            stack_template_asset_object_url: None,
            requires_bootstrap_stack_version: None,
            bootstrap_stack_version_ssm_parameter: None,
            termination_protection: false,
            dependencies: a["dependencies"]
                .as_array()
                .map(|d| {
                    d.iter()
                        .filter_map(|x| x.as_str())
                        .filter(|x| is_stack(x))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            assets: Assets::default(),
        });
    }
    Ok(CloudAssembly {
        dir: dir.to_owned(),
        version: m["version"].as_str().unwrap_or_default().to_owned(),
        stacks,
    })
}
