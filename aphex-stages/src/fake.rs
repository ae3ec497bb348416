//! Test fakes (feature `test-util`): a [`StackDeployer`] that records which
//! stacks it was asked to deploy, in which order and how many at once, can
//! be told to fail a stack, and otherwise answers as [`NoopDeployer`] does
//! (the deployer of `--deployer fake`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use crate::local::NoopDeployer;
use crate::local::deployer::{recorded_event, template_outputs};
use crate::ports::{DeployError, DeployProgress, DeployRequest, Review, StackDeployer, StackOutcome};
use crate::risk::ResourceChange;

/// What the fake was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployCall {
    /// Environment name.
    pub environment: String,
    /// Artifact id.
    pub artifact_id: String,
    /// CloudFormation stack name.
    pub stack_name: String,
}

/// Records deploys instead of doing them.
#[derive(Debug, Default)]
pub struct RecordingDeployer {
    calls: Mutex<Vec<DeployCall>>,
    fail: HashSet<String>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    changes: BTreeMap<String, Vec<ResourceChange>>,
}

impl RecordingDeployer {
    /// A deployer where every stack succeeds.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the stack with this artifact id or stack name fail.
    pub fn failing(mut self, stack: impl Into<String>) -> Self {
        self.fail.insert(stack.into());
        self
    }

    /// Has the change set of the stack with this artifact id or stack name
    /// make `changes`: shown to the stage's review (the risk gates) before
    /// the fake "executes" it, as the CloudFormation deployer does.
    pub fn with_changes(mut self, stack: impl Into<String>, changes: Vec<ResourceChange>) -> Self {
        self.changes.insert(stack.into(), changes);
        self
    }

    /// Every call so far, in the order they started.
    pub fn calls(&self) -> Vec<DeployCall> {
        self.calls.lock().expect("calls lock").clone()
    }

    /// The most deploys that were in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl StackDeployer for RecordingDeployer {
    fn describe(&self) -> String {
        NoopDeployer.describe()
    }

    async fn deploy(
        &self,
        request: DeployRequest<'_>,
        progress: &dyn DeployProgress,
    ) -> Result<StackOutcome, DeployError> {
        let stack = request.stack;
        self.calls.lock().expect("calls lock").push(DeployCall {
            environment: request.environment.name.clone(),
            artifact_id: stack.id.clone(),
            stack_name: stack.stack_name.clone(),
        });
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        // Let other deploys start, so concurrency is observable.
        tokio::task::yield_now().await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let failing = self.fail.contains(&stack.id) || self.fail.contains(&stack.stack_name);
        let event = recorded_event(
            &stack.stack_name,
            if failing { "RECORDED_FAILURE" } else { "RECORDED" },
        );
        progress.event(&event);
        let changes = self
            .changes
            .get(&stack.id)
            .or_else(|| self.changes.get(&stack.stack_name));
        if let Some(changes) = changes
            && progress.reviews_changes()
            && let Review::Stop(why) = progress.review(&stack.stack_name, changes)
        {
            return Err(DeployError {
                stack: stack.stack_name.clone(),
                message: format!("{why}; its change set was deleted and nothing was executed"),
                root_causes: vec![],
            });
        }
        if failing {
            return Err(DeployError {
                stack: stack.stack_name.clone(),
                message: "the fake deployer was told to fail this stack".to_owned(),
                root_causes: vec![event],
            });
        }
        Ok(StackOutcome {
            stack_name: stack.stack_name.clone(),
            changed: true,
            outputs: template_outputs(&stack.stack_name, &stack.template_file),
        })
    }
}
