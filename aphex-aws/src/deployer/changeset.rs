//! The change-set machinery every stack deploy goes through (assembly stacks
//! and the pipeline's own stack alike): settle the stack first (wait for an
//! operation in flight, delete a failed first create), create a CREATE or
//! UPDATE change set, treat an empty one as a no-op, execute it while
//! streaming events, then report outputs or the root causes of a failure.
//!
//! Calls that change something carry one request token per deploy, and an
//! answer lost on the way back is recognised: the SDK sends the call again,
//! and when that retry is refused because the first attempt already
//! happened (the change set exists, the change set is executing), the
//! deploy carries on from there instead of failing.

use std::collections::BTreeMap;

use aphex_stages::ports::{DeployError, DeployProgress, StackOutcome, StackOutput};
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{Capability, ChangeSetType, Parameter, Stack, Tag};

use super::error::LEFT_CHANGE_SET;
use super::events::{EventTail, describe_causes, root_causes};
use super::unchanged::skip_unchanged;
use super::wait::{ChangeSetState, Operation, wait_for_change_set, wait_for_stack};
use super::{DeployOptions, StepError, is_missing_stack};
use crate::client::{CallError, call_error};

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
    /// The template's text as synthesized, however `template` sends it: an
    /// unchanged stack is recognised by it ([`unchanged`]).
    pub(crate) template_body: String,
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
    let failed = |e: StepError| fail(e.to_string());

    let existing = settle(cfn, name, progress, options).await?;
    if let Some(stack) = &existing
        && let Some(outcome) = skip_unchanged(cfn, input, stack, options).await?
    {
        return Ok(outcome);
    }
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

    // One token per deploy: AWS knows a call sent again by it, and the
    // change set's description carries it, so a change set made by an
    // attempt whose answer was lost is known as this deploy's own.
    let token = request_token();
    progress.step(
        name,
        &format!("creating its {} change set", change_set_type.as_str()),
    );
    delete_change_set(cfn, name, CHANGE_SET_NAME)
        .await
        .map_err(failed)?;
    let id = create_change_set(cfn, input, &change_set_type, &token)
        .await
        .map_err(failed)?;

    match wait_for_change_set(cfn, name, &id, options)
        .await
        .map_err(|e| fail(format!("{e}; {LEFT_CHANGE_SET}")))?
    {
        ChangeSetState::Ready => {
            if progress.reviews_changes() {
                super::review::review(cfn, name, &id, progress)
                    .await
                    .map_err(failed)?;
            }
        }
        ChangeSetState::Empty => {
            delete_change_set(cfn, name, &id).await.map_err(failed)?;
            let stack = describe(cfn, name)
                .await
                .map_err(failed)?
                .ok_or_else(|| fail("the stack disappeared after an empty change set".to_owned()))?;
            protect(cfn, name, &stack, input.termination_protection)
                .await
                .map_err(failed)?;
            return Ok(StackOutcome {
                stack_name: name.to_owned(),
                changed: false,
                outputs: outputs_of(&stack),
            });
        }
        ChangeSetState::Failed(reason) => {
            delete_change_set(cfn, name, &id).await.map_err(failed)?;
            if creating {
                // The failed CREATE change set left an empty stack behind in
                // REVIEW_IN_PROGRESS; remove it so the next try starts clean
                // (if it stays, the next deploy creates into it all the same).
                if let Err(err) = cfn
                    .delete_stack()
                    .stack_name(name)
                    .client_request_token(&token)
                    .send()
                    .await
                {
                    tracing::warn!(
                        stack = name,
                        error = call_error("CloudFormation", "DeleteStack", &err),
                        "the empty stack a failed CREATE change set made is left in REVIEW_IN_PROGRESS"
                    );
                }
            }
            return Err(fail(format!(
                "the change set failed: {reason}; fix the template or parameters and deploy again"
            )));
        }
    }

    let mut tail = EventTail::start(cfn, name)
        .await
        .map_err(|e| fail(format!("{e}; {LEFT_CHANGE_SET}")))?;
    progress.step(
        name,
        &format!("executing its {} change set", change_set_type.as_str()),
    );
    execute(cfn, name, &id, &token, &mut tail, progress)
        .await
        .map_err(failed)?;

    let verb = change_set_type.as_str();
    let stack = wait_for_stack(cfn, name, &mut tail, Operation::Requested, progress, options)
        .await
        .map_err(|e| {
            fail(format!(
                "{e}; the {verb} of the stack was started and may still be in progress: the next deploy waits for it to end (`aws cloudformation describe-stacks --stack-name {name}` shows where it is)"
            ))
        })?;
    let Some(stack) = stack else {
        return Err(fail("the stack disappeared while it was deploying".to_owned()));
    };
    let status = status_of(&stack);
    if status == "CREATE_COMPLETE" || status == "UPDATE_COMPLETE" {
        protect(cfn, name, &stack, input.termination_protection)
            .await
            .map_err(failed)?;
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

/// A token for the calls of one deploy (`ClientToken`,
/// `ClientRequestToken`: a letter, then letters, digits and dashes).
fn request_token() -> String {
    format!("aphex-{}", uuid::Uuid::new_v4().simple())
}

/// Creates change set [`CHANGE_SET_NAME`] and returns its id. When the
/// answer to the first attempt was lost, the SDK sends the call again:
/// AWS recognises the token and answers as before, but a service that does
/// not (the emulator, or AWS past the token's lifetime) refuses with
/// `AlreadyExistsException`. The name was free a moment ago, so the change
/// set is this deploy's own when its description carries the token, and is
/// used; one made by another client meanwhile is deleted, once.
async fn create_change_set(
    cfn: &Client,
    input: &StackInput,
    kind: &ChangeSetType,
    token: &str,
) -> Result<String, StepError> {
    let name = input.stack_name.as_str();
    let description = format!("{} [{token}]", input.description);
    for _ in 0..2 {
        let mut request = cfn
            .create_change_set()
            .stack_name(name)
            .change_set_name(CHANGE_SET_NAME)
            .change_set_type(kind.clone())
            .client_token(token)
            .description(&description)
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
        let err = match request.send().await {
            Ok(created) => return Ok(created.id().unwrap_or(CHANGE_SET_NAME).to_owned()),
            Err(err) => err,
        };
        if err.code() != Some("AlreadyExistsException") {
            return Err(StepError::call_while(
                format!("creating the {} change set failed", kind.as_str()),
                CallError::new("CloudFormation", "CreateChangeSet", err),
            ));
        }
        let existing = cfn
            .describe_change_set()
            .stack_name(name)
            .change_set_name(CHANGE_SET_NAME)
            .send()
            .await
            .map_err(|err| {
                StepError::call_while(
                    format!("change set {CHANGE_SET_NAME} already exists and reading it failed"),
                    CallError::new("CloudFormation", "DescribeChangeSet", err),
                )
            })?;
        if existing.description().is_some_and(|d| d.contains(token)) {
            tracing::info!(
                stack = name,
                "the answer to CreateChangeSet was lost, but its change set exists: using it"
            );
            return Ok(existing.change_set_id().unwrap_or(CHANGE_SET_NAME).to_owned());
        }
        tracing::warn!(
            stack = name,
            description = existing.description().unwrap_or_default(),
            "another client created change set {CHANGE_SET_NAME} meanwhile: deleting it"
        );
        let foreign = existing.change_set_id().unwrap_or(CHANGE_SET_NAME);
        delete_change_set(cfn, name, foreign).await?;
    }
    Err(StepError::ChangeSetContested)
}

/// Executes change set `id`. When the answer to the first attempt was lost,
/// the SDK sends the call again, which AWS answers by the token, but a
/// service that does not recognise it refuses (`InvalidChangeSetStatus`:
/// the change set is executing already). Whatever the error, the change
/// set's execution status (or, once it is gone, the stack's own events since
/// `tail` started) tells whether the execution began; if it did, the
/// deploy waits for it.
async fn execute(
    cfn: &Client,
    name: &str,
    id: &str,
    token: &str,
    tail: &mut EventTail,
    progress: &dyn DeployProgress,
) -> Result<(), StepError> {
    let err = match cfn
        .execute_change_set()
        .stack_name(name)
        .change_set_name(id)
        .client_request_token(token)
        .send()
        .await
    {
        Ok(_) => return Ok(()),
        Err(err) => err,
    };
    let source = CallError::new("CloudFormation", "ExecuteChangeSet", err);
    match execution_began(cfn, name, id, tail, progress).await {
        Ok(true) => {
            tracing::info!(
                stack = name,
                "the answer to ExecuteChangeSet was lost, but the change set is executing: waiting for the stack"
            );
            Ok(())
        }
        Ok(false) => Err(StepError::Execute { source }),
        Err(unknown) => Err(StepError::ExecuteUnknown {
            source,
            unknown: Box::new(unknown),
        }),
    }
}

/// Whether change set `id` began executing: its execution status says so;
/// if it is gone (AWS removes change sets once one executed), the stack's
/// own `*_IN_PROGRESS` event since `tail` started does.
async fn execution_began(
    cfn: &Client,
    name: &str,
    id: &str,
    tail: &mut EventTail,
    progress: &dyn DeployProgress,
) -> Result<bool, StepError> {
    match cfn
        .describe_change_set()
        .stack_name(name)
        .change_set_name(id)
        .send()
        .await
    {
        Ok(change_set) => Ok(matches!(
            change_set.execution_status().map(|s| s.as_str()),
            Some("EXECUTE_IN_PROGRESS" | "EXECUTE_COMPLETE" | "EXECUTE_FAILED")
        )),
        Err(err) if is_missing_change_set(&err) => {
            tail.poll(cfn, progress).await?;
            Ok(tail.saw_stack_operation_begin())
        }
        Err(err) => Err(CallError::new("CloudFormation", "DescribeChangeSet", err).into()),
    }
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
    let failed = |e: StepError| fail(e.to_string());
    // Each pass ends one operation; three is enough for wait, delete, gone.
    for _ in 0..4 {
        let Some(stack) = describe(cfn, name).await.map_err(failed)? else {
            return Ok(None);
        };
        let status = status_of(&stack);
        if is_in_progress(status) {
            tracing::info!(
                stack = name,
                status,
                "waiting for the operation in progress to end"
            );
            progress.step(
                name,
                &format!("waiting for the operation in progress ({status}) to end"),
            );
            let id = stack.stack_id().unwrap_or(name);
            let mut tail = EventTail::start_at(cfn, name, id).await.map_err(failed)?;
            wait_for_stack(cfn, name, &mut tail, Operation::Running, progress, options)
                .await
                .map_err(failed)?;
            continue;
        }
        if status == "ROLLBACK_COMPLETE" {
            tracing::info!(
                stack = name,
                "deleting the stack left in ROLLBACK_COMPLETE by a failed create"
            );
            progress.step(
                name,
                "deleting the stack its failed first create left in ROLLBACK_COMPLETE",
            );
            let id = stack.stack_id().unwrap_or(name).to_owned();
            return recreate_from_rollback(cfn, name, &id, progress, options)
                .await
                .map_err(failed);
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
) -> Result<Option<Stack>, StepError> {
    let mut last = (String::new(), String::new());
    for _attempt in 0..2 {
        let mut tail = EventTail::start_at(cfn, name, id).await?;
        let delete = cfn
            .delete_stack()
            .stack_name(name)
            .client_request_token(request_token());
        delete.send().await.map_err(|err| {
            StepError::call_while(
                "the stack is in ROLLBACK_COMPLETE and deleting it (to create it again) failed",
                CallError::new("CloudFormation", "DeleteStack", err),
            )
        })?;
        match wait_for_stack(cfn, name, &mut tail, Operation::Requested, progress, options).await? {
            None => return Ok(None),
            Some(after) => {
                last = (
                    status_of(&after).to_owned(),
                    after
                        .stack_status_reason()
                        .unwrap_or("no reason given")
                        .to_owned(),
                );
                tracing::warn!(
                    stack = name,
                    status = format!("{}: {}", last.0, last.1),
                    "deleting the rolled-back stack failed"
                );
            }
        }
    }
    Err(StepError::RollbackNotDeleted {
        status: last.0,
        reason: last.1,
    })
}

/// What deleting a stack did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackDeleted {
    /// It existed and is gone; its outputs, as they were.
    Deleted(Vec<StackOutput>),
    /// There was no such stack.
    Absent,
}

/// Deletes stack `name` (`aphex destroy`) and waits until it is gone,
/// streaming its events; resources with a `Retain` policy stay. The token
/// makes a repeat of a delete whose answer was lost the same delete.
pub(crate) async fn delete(
    cfn: &Client,
    name: &str,
    progress: &dyn DeployProgress,
    options: &DeployOptions,
) -> Result<StackDeleted, StepError> {
    let Some(stack) = describe(cfn, name).await? else {
        return Ok(StackDeleted::Absent);
    };
    let outputs = outputs_of(&stack);
    let id = stack.stack_id().unwrap_or(name).to_owned();
    // Whatever is in flight ends first: a delete cannot start meanwhile.
    if is_in_progress(status_of(&stack)) {
        let mut tail = EventTail::start_at(cfn, name, &id).await?;
        wait_for_stack(cfn, &id, &mut tail, Operation::Running, progress, options).await?;
    }
    let mut tail = EventTail::start_at(cfn, name, &id).await?;
    cfn.delete_stack()
        .stack_name(&id)
        .client_request_token(request_token())
        .send()
        .await
        .map_err(|err| {
            StepError::call_while(
                format!("deleting stack {name} failed"),
                CallError::new("CloudFormation", "DeleteStack", err),
            )
        })?;
    match wait_for_stack(cfn, &id, &mut tail, Operation::Requested, progress, options).await? {
        None => Ok(StackDeleted::Deleted(outputs)),
        Some(after) => Err(StepError::DeleteEnded {
            stack: name.to_owned(),
            status: status_of(&after).to_owned(),
            reason: after
                .stack_status_reason()
                .unwrap_or("no reason given")
                .to_owned(),
        }),
    }
}

/// Deletes change set `change_set` (its name or id) of stack `name`, if it exists.
pub(super) async fn delete_change_set(cfn: &Client, name: &str, change_set: &str) -> Result<(), StepError> {
    match cfn
        .delete_change_set()
        .stack_name(name)
        .change_set_name(change_set)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(err) if is_missing_change_set(&err) => Ok(()),
        Err(err) => Err(StepError::call_while(
            format!("deleting change set {CHANGE_SET_NAME} failed"),
            CallError::new("CloudFormation", "DeleteChangeSet", err),
        )),
    }
}

fn is_missing_change_set<E, R>(err: &aws_sdk_cloudformation::error::SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    err.code() == Some("ChangeSetNotFound") || is_missing_stack(err)
}

/// The stack named `name`, or `None` when it does not exist (or was deleted).
pub(crate) async fn describe(cfn: &Client, name: &str) -> Result<Option<Stack>, StepError> {
    match cfn.describe_stacks().stack_name(name).send().await {
        Ok(out) => Ok(out
            .stacks()
            .first()
            .filter(|s| status_of(s) != "DELETE_COMPLETE")
            .cloned()),
        Err(err) if is_missing_stack(&err) => Ok(None),
        Err(err) => Err(StepError::call_while(
            "describing the stack failed",
            CallError::new("CloudFormation", "DescribeStacks", err),
        )),
    }
}

pub(crate) fn status_of(stack: &Stack) -> &str {
    stack.stack_status().map(|s| s.as_str()).unwrap_or_default()
}

/// Whether an operation is running (REVIEW_IN_PROGRESS is a stack waiting for
/// its first change set to run, not an operation).
pub(crate) fn is_in_progress(status: &str) -> bool {
    status.ends_with("_IN_PROGRESS") && status != "REVIEW_IN_PROGRESS"
}

/// Sets termination protection to what the assembly asks for.
pub(crate) async fn protect(cfn: &Client, name: &str, stack: &Stack, wanted: bool) -> Result<(), StepError> {
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
            StepError::call_while(
                format!("setting termination protection to {wanted} failed"),
                CallError::new("CloudFormation", "UpdateTerminationProtection", err),
            )
        })
}

pub(crate) fn outputs_of(stack: &Stack) -> Vec<StackOutput> {
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
}
