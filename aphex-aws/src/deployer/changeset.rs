//! The change-set machinery every stack deploy goes through (assembly stacks
//! and the pipeline's own stack alike): settle the stack first (wait for an
//! operation in flight, delete a failed first create), create a CREATE or
//! UPDATE change set, treat an empty one as a no-op, execute it while
//! streaming events, then report outputs or the root causes of a failure.

use std::collections::BTreeMap;
use std::time::Instant;

use aphex_stages::ports::{DeployError, DeployProgress, StackOutcome, StackOutput};
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::{Capability, ChangeSetType, Parameter, Stack, Tag};

use super::events::{Backoff, EventTail, describe_causes, root_causes};
use super::{DeployOptions, is_missing_stack, sdk_error_text};

/// One name per stack: a leftover from an interrupted run is deleted first.
const CHANGE_SET_NAME: &str = "aphex-deploy";

/// Where the template comes from.
#[derive(Debug, Clone)]
pub(crate) enum TemplateSource {
    /// Inline, at most 51,200 bytes.
    Body(String),
    /// An HTTP(S) URL of an S3 object CloudFormation can read.
    Url(String),
}

/// Everything one change set needs.
#[derive(Debug, Clone)]
pub(crate) struct StackInput {
    pub(crate) stack_name: String,
    pub(crate) template: TemplateSource,
    pub(crate) parameters: BTreeMap<String, String>,
    pub(crate) tags: BTreeMap<String, String>,
    /// The role CloudFormation itself acts as (`RoleARN`).
    pub(crate) execution_role_arn: Option<String>,
    pub(crate) termination_protection: bool,
    pub(crate) description: String,
}

/// Deploys `input` through a change set and waits for the result.
pub(crate) async fn deploy(
    cfn: &Client,
    input: &StackInput,
    progress: &dyn DeployProgress,
    options: &DeployOptions,
) -> Result<StackOutcome, DeployError> {
    let name = input.stack_name.as_str();
    let fail = |message: String| DeployError {
        stack: name.to_owned(),
        message,
        root_causes: vec![],
    };

    let existing = settle(cfn, name, progress, options).await?;
    // A stack in REVIEW_IN_PROGRESS was made by a change set never executed:
    // it still needs a CREATE change set.
    let creating = existing
        .as_ref()
        .is_none_or(|s| status_of(s) == "REVIEW_IN_PROGRESS");
    let change_set_type = if creating {
        ChangeSetType::Create
    } else {
        ChangeSetType::Update
    };

    delete_change_set(cfn, name).await.map_err(fail)?;
    let mut request = cfn
        .create_change_set()
        .stack_name(name)
        .change_set_name(CHANGE_SET_NAME)
        .change_set_type(change_set_type.clone())
        .description(&input.description)
        .capabilities(Capability::CapabilityIam)
        .capabilities(Capability::CapabilityNamedIam)
        .capabilities(Capability::CapabilityAutoExpand)
        .set_role_arn(input.execution_role_arn.clone())
        .set_parameters(Some(
            input
                .parameters
                .iter()
                .map(|(k, v)| Parameter::builder().parameter_key(k).parameter_value(v).build())
                .collect(),
        ))
        .set_tags(Some(
            input
                .tags
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ));
    request = match &input.template {
        TemplateSource::Body(body) => request.template_body(body),
        TemplateSource::Url(url) => request.template_url(url),
    };
    request.send().await.map_err(|err| {
        fail(format!(
            "creating the {} change set failed: {}",
            change_set_type.as_str(),
            sdk_error_text(&err)
        ))
    })?;

    match wait_for_change_set(cfn, name, options).await.map_err(fail)? {
        ChangeSetState::Ready => {}
        ChangeSetState::Empty => {
            delete_change_set(cfn, name).await.map_err(fail)?;
            let stack = describe(cfn, name)
                .await
                .map_err(fail)?
                .ok_or_else(|| fail("the stack disappeared after an empty change set".to_owned()))?;
            protect(cfn, name, &stack, input.termination_protection)
                .await
                .map_err(fail)?;
            return Ok(StackOutcome {
                stack_name: name.to_owned(),
                changed: false,
                outputs: outputs_of(&stack),
            });
        }
        ChangeSetState::Failed(reason) => {
            delete_change_set(cfn, name).await.map_err(&fail)?;
            if creating {
                // The failed CREATE change set left an empty stack behind in
                // REVIEW_IN_PROGRESS; remove it so the next try starts clean.
                cfn.delete_stack().stack_name(name).send().await.ok();
            }
            return Err(fail(format!(
                "the change set failed: {reason}; fix the template or parameters and deploy again"
            )));
        }
    }

    let mut tail = EventTail::start(cfn, name).await.map_err(fail)?;
    cfn.execute_change_set()
        .stack_name(name)
        .change_set_name(CHANGE_SET_NAME)
        .send()
        .await
        .map_err(|err| {
            fail(format!(
                "executing the change set failed: {}",
                sdk_error_text(&err)
            ))
        })?;

    let stack = wait_for_stack(cfn, name, &mut tail, Operation::Requested, progress, options)
        .await
        .map_err(fail)?;
    let Some(stack) = stack else {
        return Err(fail("the stack disappeared while it was deploying".to_owned()));
    };
    let status = status_of(&stack);
    if status == "CREATE_COMPLETE" || status == "UPDATE_COMPLETE" {
        protect(cfn, name, &stack, input.termination_protection)
            .await
            .map_err(fail)?;
        return Ok(StackOutcome {
            stack_name: name.to_owned(),
            changed: true,
            outputs: outputs_of(&stack),
        });
    }

    let causes = root_causes(tail.events());
    let why = if causes.is_empty() {
        stack
            .stack_status_reason()
            .unwrap_or("no reason given")
            .to_owned()
    } else {
        describe_causes(&causes)
    };
    let hint = if status == "ROLLBACK_COMPLETE" {
        "fix the cause and deploy again (the next deploy deletes the rolled-back stack and creates it anew)"
    } else {
        "fix the cause and deploy again"
    };
    Err(DeployError {
        stack: name.to_owned(),
        message: format!("{} ended in {status}: {why}; {hint}", change_set_type.as_str()),
        root_causes: causes,
    })
}

/// Brings the stack to a state a change set can start from: waits (within
/// the bound) for an operation in flight, and deletes a stack whose first
/// create rolled back. Returns the stack, or `None` when there is none.
async fn settle(
    cfn: &Client,
    name: &str,
    progress: &dyn DeployProgress,
    options: &DeployOptions,
) -> Result<Option<Stack>, DeployError> {
    let fail = |message: String| DeployError {
        stack: name.to_owned(),
        message,
        root_causes: vec![],
    };
    // Each pass ends one operation; three is enough for wait, delete, gone.
    for _ in 0..4 {
        let Some(stack) = describe(cfn, name).await.map_err(fail)? else {
            return Ok(None);
        };
        let status = status_of(&stack);
        if is_in_progress(status) {
            tracing::info!(
                stack = name,
                status,
                "waiting for the operation in progress to end"
            );
            let id = stack.stack_id().unwrap_or(name);
            let mut tail = EventTail::start_at(cfn, name, id).await.map_err(fail)?;
            wait_for_stack(cfn, name, &mut tail, Operation::Running, progress, options)
                .await
                .map_err(fail)?;
            continue;
        }
        if status == "ROLLBACK_COMPLETE" {
            tracing::info!(
                stack = name,
                "deleting the stack left in ROLLBACK_COMPLETE by a failed create"
            );
            let id = stack.stack_id().unwrap_or(name).to_owned();
            return recreate_from_rollback(cfn, name, &id, progress, options)
                .await
                .map_err(fail);
        }
        if let Some(fix) = stuck_fix(status, name) {
            let reason = stack.stack_status_reason().unwrap_or("no reason given");
            return Err(fail(format!(
                "the stack is in {status} ({reason}) and CloudFormation cannot change it; {fix}"
            )));
        }
        return Ok(Some(stack));
    }
    Err(fail(
        "the stack kept changing state while Aphex waited for it to settle".to_owned(),
    ))
}

/// How to free a stack stuck in a state no change set can start from.
fn stuck_fix(status: &str, name: &str) -> Option<String> {
    match status {
        "UPDATE_ROLLBACK_FAILED" => Some(format!(
            "continue the rollback (`aws cloudformation continue-update-rollback --stack-name {name}`, skipping the resources that cannot roll back) and deploy again"
        )),
        "ROLLBACK_FAILED" | "DELETE_FAILED" => Some(format!(
            "delete it (`aws cloudformation delete-stack --stack-name {name}`, retaining the resources that fail to delete) and deploy again"
        )),
        _ => None,
    }
}

/// Deletes a stack whose first create rolled back (it holds nothing worth
/// keeping). A delete that ends in DELETE_FAILED is tried once more: the
/// emulator passes through that status on its way to DELETE_COMPLETE, and on
/// AWS a second delete clears transient failures.
async fn recreate_from_rollback(
    cfn: &Client,
    name: &str,
    id: &str,
    progress: &dyn DeployProgress,
    options: &DeployOptions,
) -> Result<Option<Stack>, String> {
    let mut last = String::new();
    for _attempt in 0..2 {
        let mut tail = EventTail::start_at(cfn, name, id).await?;
        cfn.delete_stack().stack_name(name).send().await.map_err(|err| {
            format!(
                "the stack is in ROLLBACK_COMPLETE and deleting it (to create it again) failed: {}",
                sdk_error_text(&err)
            )
        })?;
        match wait_for_stack(cfn, name, &mut tail, Operation::Requested, progress, options).await? {
            None => return Ok(None),
            Some(after) => {
                last = format!(
                    "{}: {}",
                    status_of(&after),
                    after.stack_status_reason().unwrap_or("no reason given")
                );
                tracing::warn!(
                    stack = name,
                    status = last,
                    "deleting the rolled-back stack failed"
                );
            }
        }
    }
    Err(format!(
        "the stack was in ROLLBACK_COMPLETE and deleting it (to create it again) ended in {last}; delete it by hand and deploy again"
    ))
}

/// What [`wait_for_stack`] follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    /// One found in progress.
    Running,
    /// One just requested (execute, delete): until the stack's own
    /// `*_IN_PROGRESS` event shows it began, the status may still be the
    /// one from before, which must not be taken as the result.
    Requested,
}

/// Polls until the stack is no longer in progress (or is gone), streaming
/// events; fails after the wait bound.
async fn wait_for_stack(
    cfn: &Client,
    name: &str,
    tail: &mut EventTail,
    operation: Operation,
    progress: &dyn DeployProgress,
    options: &DeployOptions,
) -> Result<Option<Stack>, String> {
    let started = Instant::now();
    let mut backoff = Backoff::new(options.poll_initial, options.poll_max);
    loop {
        // Status first, then events: every event up to the final status is
        // reported before returning.
        let stack = describe(cfn, name).await?;
        if tail.poll(cfn, progress).await? > 0 {
            backoff.reset();
        }
        let begun = operation == Operation::Running || tail.saw_stack_operation_begin();
        let Some(stack) = stack else { return Ok(None) };
        let status = status_of(&stack);
        if status == "DELETE_COMPLETE" {
            return Ok(None);
        }
        if !is_in_progress(status) && begun {
            return Ok(Some(stack));
        }
        if started.elapsed() > options.wait_timeout {
            return Err(format!(
                "still {status} after {} s; wait for the operation to finish (or cancel it in the CloudFormation console) and deploy again",
                options.wait_timeout.as_secs()
            ));
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

enum ChangeSetState {
    Ready,
    Empty,
    Failed(String),
}

async fn wait_for_change_set(
    cfn: &Client,
    name: &str,
    options: &DeployOptions,
) -> Result<ChangeSetState, String> {
    let started = Instant::now();
    let mut backoff = Backoff::new(options.poll_initial, options.poll_max);
    loop {
        let change_set = cfn
            .describe_change_set()
            .stack_name(name)
            .change_set_name(CHANGE_SET_NAME)
            .send()
            .await
            .map_err(|err| format!("reading the change set failed: {}", sdk_error_text(&err)))?;
        let status = change_set.status().map(|s| s.as_str()).unwrap_or_default();
        let reason = change_set.status_reason().unwrap_or_default();
        match status {
            "CREATE_COMPLETE" => return Ok(ChangeSetState::Ready),
            "FAILED" if is_empty_change_set(reason) => return Ok(ChangeSetState::Empty),
            "FAILED" | "DELETE_FAILED" | "DELETE_COMPLETE" => {
                return Ok(ChangeSetState::Failed(format!("{status}: {reason}")));
            }
            _ if started.elapsed() > options.wait_timeout => {
                return Err(format!(
                    "the change set is still {status} after {} s",
                    options.wait_timeout.as_secs()
                ));
            }
            _ => tokio::time::sleep(backoff.next_delay()).await,
        }
    }
}

/// CloudFormation's ways of saying "nothing to do".
fn is_empty_change_set(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

async fn delete_change_set(cfn: &Client, name: &str) -> Result<(), String> {
    match cfn
        .delete_change_set()
        .stack_name(name)
        .change_set_name(CHANGE_SET_NAME)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(err) if is_missing_change_set(&err) => Ok(()),
        Err(err) => Err(format!(
            "deleting change set {CHANGE_SET_NAME} failed: {}",
            sdk_error_text(&err)
        )),
    }
}

fn is_missing_change_set<E, R>(err: &aws_sdk_cloudformation::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_cloudformation::error::ProvideErrorMetadata,
{
    use aws_sdk_cloudformation::error::ProvideErrorMetadata;
    err.code() == Some("ChangeSetNotFound") || is_missing_stack(err)
}

/// The stack named `name`, or `None` when it does not exist (or was deleted).
pub(crate) async fn describe(cfn: &Client, name: &str) -> Result<Option<Stack>, String> {
    match cfn.describe_stacks().stack_name(name).send().await {
        Ok(out) => Ok(out
            .stacks()
            .first()
            .filter(|s| status_of(s) != "DELETE_COMPLETE")
            .cloned()),
        Err(err) if is_missing_stack(&err) => Ok(None),
        Err(err) => Err(format!("describing the stack failed: {}", sdk_error_text(&err))),
    }
}

fn status_of(stack: &Stack) -> &str {
    stack.stack_status().map(|s| s.as_str()).unwrap_or_default()
}

/// Whether an operation is running (REVIEW_IN_PROGRESS is a stack waiting for
/// its first change set to run, not an operation).
fn is_in_progress(status: &str) -> bool {
    status.ends_with("_IN_PROGRESS") && status != "REVIEW_IN_PROGRESS"
}

/// Sets termination protection to what the assembly asks for.
async fn protect(cfn: &Client, name: &str, stack: &Stack, wanted: bool) -> Result<(), String> {
    if stack.enable_termination_protection().unwrap_or(false) == wanted {
        return Ok(());
    }
    cfn.update_termination_protection()
        .stack_name(name)
        .enable_termination_protection(wanted)
        .send()
        .await
        .map(|_| ())
        .map_err(|err| {
            format!(
                "setting termination protection to {wanted} failed: {}",
                sdk_error_text(&err)
            )
        })
}

fn outputs_of(stack: &Stack) -> Vec<StackOutput> {
    stack
        .outputs()
        .iter()
        .map(|o| StackOutput {
            key: o.output_key().unwrap_or_default().to_owned(),
            value: o.output_value().unwrap_or_default().to_owned(),
            export_name: o.export_name().map(str::to_owned),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_in_progress_is_not_an_operation_in_flight() {
        assert!(is_in_progress("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"));
        assert!(is_in_progress("ROLLBACK_IN_PROGRESS"));
        assert!(!is_in_progress("REVIEW_IN_PROGRESS"));
        assert!(!is_in_progress("UPDATE_ROLLBACK_COMPLETE"));
    }

    #[test]
    fn stuck_stacks_get_a_way_out_and_others_none() {
        let fix = stuck_fix("UPDATE_ROLLBACK_FAILED", "App").unwrap();
        assert!(fix.contains("continue-update-rollback --stack-name App"), "{fix}");
        assert!(
            stuck_fix("DELETE_FAILED", "App")
                .unwrap()
                .contains("delete-stack --stack-name App")
        );
        assert!(stuck_fix("ROLLBACK_FAILED", "App").is_some());
        for fine in [
            "CREATE_COMPLETE",
            "UPDATE_COMPLETE",
            "UPDATE_ROLLBACK_COMPLETE",
            "REVIEW_IN_PROGRESS",
        ] {
            assert_eq!(stuck_fix(fine, "App"), None, "{fine}");
        }
    }

    #[test]
    fn empty_change_set_reasons_are_recognised() {
        assert!(is_empty_change_set(
            "The submitted information didn't contain changes. Submit different information to create a change set."
        ));
        assert!(is_empty_change_set("No updates are to be performed."));
        assert!(!is_empty_change_set("Template format error"));
    }
}
