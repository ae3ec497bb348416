//! Cloud assemblies written by hand, shaped as `cdk synth` writes them
//! (`manifest.json`, one template per stack, the tree artifact), for tests
//! that need an assembly without running the CDK. The real ones, from a
//! real `cdk synth`, are the committed fixtures (`cargo xtask fixtures`).

use std::path::Path;

use serde_json::{Map, Value, json};

/// One stack of a hand-written assembly.
pub struct FakeStack<'a> {
    /// The artifact id (`AppStack`).
    pub id: &'a str,
    /// `aws://ACCOUNT/REGION`; `aws://unknown-account/unknown-region` for
    /// a stack that deploys wherever its environment says.
    pub environment: &'a str,
    /// `displayName`, when the test wants one.
    pub display_name: Option<&'a str>,
    /// `properties.stackName`, when it differs from the id.
    pub stack_name: Option<&'a str>,
    /// Artifact ids this stack depends on.
    pub depends_on: &'a [&'a str],
    /// The template's outputs: key and literal value.
    pub outputs: &'a [(&'a str, &'a str)],
    /// Annotations of the stack's construct: `error`, `warning` or `info`,
    /// and the text; in its `additionalMetadataFile`, as aws-cdk-lib 2.276
    /// writes them.
    pub annotations: &'a [(&'a str, &'a str)],
}

impl<'a> FakeStack<'a> {
    /// A stack in `aws://123456789012/us-east-1` with no dependencies and
    /// no outputs.
    pub fn new(id: &'a str) -> Self {
        FakeStack {
            id,
            environment: "aws://123456789012/us-east-1",
            display_name: None,
            stack_name: None,
            depends_on: &[],
            outputs: &[],
            annotations: &[],
        }
    }
}

/// Writes a minimal cloud assembly (manifest.json + one template per stack,
/// each with one SSM parameter) into `dir`.
pub fn write_assembly(dir: &Path, stacks: &[FakeStack<'_>]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut artifacts = Map::new();
    for s in stacks {
        let template = format!("{}.template.json", s.id);
        let outputs: Map<String, Value> = s
            .outputs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!({ "Value": v })))
            .collect();
        std::fs::write(
            dir.join(&template),
            json!({
                "Resources": { "Param": { "Type": "AWS::SSM::Parameter", "Properties": { "Type": "String", "Value": "x" } } },
                "Outputs": outputs,
            })
            .to_string(),
        )
        .unwrap();
        let mut props = json!({ "templateFile": template, "validateOnSynth": false });
        if let Some(n) = s.stack_name {
            props["stackName"] = n.into();
        }
        let mut a = json!({
            "type": "aws:cloudformation:stack",
            "environment": s.environment,
            "properties": props,
        });
        if !s.depends_on.is_empty() {
            a["dependencies"] = json!(s.depends_on);
        }
        if let Some(d) = s.display_name {
            a["displayName"] = d.into();
        }
        if !s.annotations.is_empty() {
            let file = format!("{}.metadata.json", s.id);
            let entries: Vec<Value> = s
                .annotations
                .iter()
                .map(|(level, text)| json!({ "type": format!("aws:cdk:{level}"), "data": text }))
                .collect();
            std::fs::write(
                dir.join(&file),
                json!({ format!("/{}", s.id): entries }).to_string(),
            )
            .unwrap();
            a["additionalMetadataFile"] = file.into();
        }
        artifacts.insert(s.id.to_owned(), a);
    }
    artifacts.insert(
        "Tree".to_owned(),
        json!({ "type": "cdk:tree", "properties": { "file": "tree.json" } }),
    );
    std::fs::write(dir.join("tree.json"), "{}").unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&json!({ "version": "55.0.0", "artifacts": artifacts })).unwrap(),
    )
    .unwrap();
}
