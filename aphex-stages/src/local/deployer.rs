//! The [`StackDeployer`] of `aphex run --local --deployer fake` and
//! `aphex-runner --deployer fake`: it deploys nothing, says so in its
//! output, and answers each stack with the outputs read from its template
//! (literal `Value`s as written, anything computed as
//! `fake:<Stack>.<Key>`), so the test stage after it has values to read.
//! A product feature (trying a pipeline without AWS), not a test fake; the
//! tests' recording deployer (`fake`, feature `test-util`) builds on it.

use std::path::Path;

use async_trait::async_trait;

use crate::ports::{
    DeployError, DeployProgress, DeployRequest, StackDeployer, StackEvent, StackOutcome, StackOutput,
};

/// Deploys nothing; answers with each stack template's outputs.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopDeployer;

/// The one event a deploy that did nothing reports: `status` is
/// `RECORDED`, or `RECORDED_FAILURE` for a stack a test made fail.
pub(crate) fn recorded_event(stack_name: &str, status: &str) -> StackEvent {
    StackEvent {
        stack: stack_name.to_owned(),
        logical_id: stack_name.to_owned(),
        resource_type: "AWS::CloudFormation::Stack".to_owned(),
        status: status.to_owned(),
        reason: Some("fake deployer: nothing was deployed".to_owned()),
        timestamp: crate::time::now_rfc3339(),
    }
}

/// Outputs declared in a template, with literal values where there are some.
pub(crate) fn template_outputs(stack: &str, template: &Path) -> Vec<StackOutput> {
    let Ok(text) = std::fs::read_to_string(template) else {
        return Vec::new();
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    let Some(outputs) = json.get("Outputs").and_then(|o| o.as_object()) else {
        return Vec::new();
    };
    outputs
        .iter()
        .map(|(key, o)| StackOutput {
            key: key.clone(),
            value: o["Value"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("fake:{stack}.{key}")),
            export_name: o["Export"]["Name"].as_str().map(str::to_owned),
        })
        .collect()
}

#[async_trait]
impl StackDeployer for NoopDeployer {
    fn describe(&self) -> String {
        "the fake deployer (records each request; deploys nothing to AWS)".to_owned()
    }

    async fn deploy(
        &self,
        request: DeployRequest<'_>,
        progress: &dyn DeployProgress,
    ) -> Result<StackOutcome, DeployError> {
        let stack = request.stack;
        // Let other deploys start, as a real one would while it waits.
        tokio::task::yield_now().await;
        progress.event(&recorded_event(&stack.stack_name, "RECORDED"));
        Ok(StackOutcome {
            stack_name: stack.stack_name.clone(),
            changed: true,
            outputs: template_outputs(&stack.stack_name, &stack.template_file),
        })
    }
}
