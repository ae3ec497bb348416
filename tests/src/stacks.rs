//! Hand-made stacks for the deployer suites (`cfn_deployer.rs`,
//! `aws_faults.rs`): a one-stack assembly around a template, the templates
//! they deploy (an SSM parameter, a failing one, one past the inline
//! limit), an environment, fast polling for the emulator, and a
//! [`DeployProgress`] that keeps every event.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use aphex_aws::deployer::{CloudFormationDeployer, DeployOptions};
use aphex_config::Environment;
use aphex_stages::assembly::{Assets, AwsEnvironment, CloudAssembly, StackArtifact};
use aphex_stages::ports::{
    DeployError, DeployProgress, DeployRequest, StackDeployer, StackEvent, StackOutcome,
};
use serde_json::json;

use crate::REGION;

/// Collects the events the deployer streams.
#[derive(Default)]
pub struct Recorder(Mutex<Vec<StackEvent>>);

impl DeployProgress for Recorder {
    fn event(&self, event: &StackEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    /// Every event so far.
    pub fn events(&self) -> Vec<StackEvent> {
        self.0.lock().unwrap().clone()
    }
}

/// Fast polling: the emulator finishes operations in well under a second.
pub fn fast_polls() -> DeployOptions {
    DeployOptions {
        poll_initial: Duration::from_millis(100),
        poll_max: Duration::from_millis(500),
        wait_timeout: Duration::from_secs(120),
        force: false,
    }
}

/// Environment `e2e` in `account` and [`REGION`].
pub fn environment(account: &str, role_arn: Option<&str>) -> Environment {
    serde_json::from_value(json!({
        "name": "e2e",
        "region": REGION,
        "account": account,
        "roleArn": role_arn,
        "stacks": [],
    }))
    .expect("environment")
}

/// A hand-made assembly of one stack whose template is `template`.
pub struct Fixture {
    _dir: tempfile::TempDir,
    /// The assembly (holding no stacks: the deployer is given the stack).
    pub assembly: CloudAssembly,
    /// The stack.
    pub stack: StackArtifact,
}

/// Stack `stack_name` of `template`, environment-agnostic, without roles or assets.
pub fn fixture(stack_name: &str, template: &serde_json::Value) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let template_file = dir.path().join(format!("{stack_name}.template.json"));
    std::fs::write(&template_file, serde_json::to_vec_pretty(template).unwrap()).unwrap();
    let stack = StackArtifact {
        id: stack_name.to_owned(),
        display_name: None,
        stack_name: stack_name.to_owned(),
        environment: AwsEnvironment {
            account: "unknown-account".into(),
            region: "unknown-region".into(),
        },
        template_file,
        parameters: BTreeMap::new(),
        tags: BTreeMap::new(),
        assume_role_arn: None,
        assume_role_external_id: None,
        cloudformation_execution_role_arn: None,
        stack_template_asset_object_url: None,
        requires_bootstrap_stack_version: None,
        bootstrap_stack_version_ssm_parameter: None,
        termination_protection: false,
        dependencies: vec![],
        assets: Assets::default(),
        messages: vec![],
    };
    let assembly = CloudAssembly {
        dir: dir.path().to_path_buf(),
        version: "55.0.0".into(),
        stacks: vec![],
    };
    Fixture {
        _dir: dir,
        assembly,
        stack,
    }
}

/// A template with one SSM parameter holding `value`, exporting its name.
pub fn parameter_template(value: &str, export: &str) -> serde_json::Value {
    json!({
        "Parameters": { "Greeting": { "Type": "String", "Default": "hello" } },
        "Resources": {
            "Param": {
                "Type": "AWS::SSM::Parameter",
                "Properties": { "Type": "String", "Value": value }
            }
        },
        "Outputs": {
            "ParameterName": { "Value": { "Ref": "Param" }, "Export": { "Name": export } },
            "Greeting": { "Value": { "Ref": "Greeting" } }
        }
    })
}

/// A template whose create fails (`Broken` is an SSM parameter of type
/// `Bogus`) after `Good` is created.
pub fn failing_template() -> serde_json::Value {
    json!({
        "Resources": {
            "Good": { "Type": "AWS::SSM::Parameter", "Properties": { "Type": "String", "Value": "ok" } },
            "Broken": {
                "Type": "AWS::SSM::Parameter",
                "DependsOn": "Good",
                "Properties": { "Type": "Bogus", "Value": "never" }
            }
        }
    })
}

/// A template padded past the 51,200-byte inline limit.
pub fn large_template(export: &str) -> serde_json::Value {
    let mut template = parameter_template("large", export);
    let padding: serde_json::Map<String, serde_json::Value> = (0..700)
        .map(|i| (format!("Note{i:04}"), json!("x".repeat(80))))
        .collect();
    template["Metadata"] = json!({ "Padding": padding });
    template
}

/// Deploys the fixture's stack to `env` for pipeline `e2e`.
pub async fn deploy(
    deployer: &CloudFormationDeployer,
    env: &Environment,
    fixture: &Fixture,
    progress: &dyn DeployProgress,
) -> Result<StackOutcome, DeployError> {
    let request = DeployRequest {
        pipeline: "e2e",
        environment: env,
        assembly: &fixture.assembly,
        stack: &fixture.stack,
    };
    deployer.deploy(request, progress).await
}
