//! Waiting on CloudFormation: polling a stack until its operation ends
//! (streaming its events) and a change set until it is computed. Each loop
//! has its own bounded backoff (polls from `poll_initial`, doubling up to
//! `poll_max`, for at most `wait_timeout`), and tolerates a few failed
//! polls in a row: each poll is one SDK call, already retried, and the
//! operation goes on in CloudFormation whether a poll got through or not.

use std::time::Instant;

use aphex_stages::ports::DeployProgress;
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::Stack;

use super::DeployOptions;
use super::StepError;
use super::changeset::{describe, is_in_progress, status_of};
use super::events::{Backoff, EventTail};
use crate::client::CallError;

/// Polls that may fail in a row (each after the SDK's own retries) before
/// a wait gives up.
pub(crate) const MAX_FAILED_POLLS: u32 = 3;

/// What [`wait_for_stack`] follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// One found in progress.
    Running,
    /// One just requested (execute, delete): until the stack's own
    /// `*_IN_PROGRESS` event shows it began, the status may still be the
    /// one from before, which must not be taken as the result.
    Requested,
}

/// Polls until the stack is no longer in progress (or is gone), streaming
/// events; fails after the wait bound, or after [`MAX_FAILED_POLLS`]
/// failed polls in a row.
pub(crate) async fn wait_for_stack(
    cfn: &Client,
    name: &str,
    tail: &mut EventTail,
    operation: Operation,
    progress: &dyn DeployProgress,
    options: &DeployOptions,
) -> Result<Option<Stack>, StepError> {
    let started = Instant::now();
    let mut backoff = Backoff::new(options.poll_initial, options.poll_max);
    let mut failed = FailedPolls::default();
    loop {
        // Status first, then events: every event up to the final status is
        // reported before returning.
        let polled = match describe(cfn, name).await {
            Ok(stack) => tail.poll(cfn, progress).await.map(|fresh| (stack, fresh)),
            Err(e) => Err(e),
        };
        match polled {
            Ok((stack, fresh)) => {
                failed.reset();
                if fresh > 0 {
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
                    return Err(StepError::StillInProgress {
                        status: status.to_owned(),
                        seconds: options.wait_timeout.as_secs(),
                    });
                }
            }
            Err(e) => failed.note(name, e)?,
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// How a change set ended up.
pub(crate) enum ChangeSetState {
    Ready,
    Empty,
    Failed(String),
}

/// Polls change set `id` of stack `name` until it is computed.
pub(crate) async fn wait_for_change_set(
    cfn: &Client,
    name: &str,
    id: &str,
    options: &DeployOptions,
) -> Result<ChangeSetState, StepError> {
    let started = Instant::now();
    let mut backoff = Backoff::new(options.poll_initial, options.poll_max);
    let mut failed = FailedPolls::default();
    loop {
        match cfn
            .describe_change_set()
            .stack_name(name)
            .change_set_name(id)
            .send()
            .await
        {
            Ok(change_set) => {
                failed.reset();
                let status = change_set.status().map(|s| s.as_str()).unwrap_or_default();
                let reason = change_set.status_reason().unwrap_or_default();
                match status {
                    "CREATE_COMPLETE" => return Ok(ChangeSetState::Ready),
                    "FAILED" if is_empty_change_set(reason) => return Ok(ChangeSetState::Empty),
                    "FAILED" | "DELETE_FAILED" | "DELETE_COMPLETE" => {
                        return Ok(ChangeSetState::Failed(format!("{status}: {reason}")));
                    }
                    _ if started.elapsed() > options.wait_timeout => {
                        return Err(StepError::ChangeSetPending {
                            status: status.to_owned(),
                            seconds: options.wait_timeout.as_secs(),
                        });
                    }
                    _ => {}
                }
            }
            Err(err) => failed.note(
                name,
                StepError::call_while(
                    "reading the change set failed",
                    CallError::new("CloudFormation", "DescribeChangeSet", err),
                ),
            )?,
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// CloudFormation's ways of saying "nothing to do".
pub(crate) fn is_empty_change_set(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

/// Failed polls in a row.
#[derive(Debug, Default)]
struct FailedPolls(u32);

impl FailedPolls {
    /// Counts a failed poll: fine to poll again, or the error to give up with.
    fn note(&mut self, stack: &str, error: StepError) -> Result<(), StepError> {
        self.0 += 1;
        if self.0 >= MAX_FAILED_POLLS {
            return Err(StepError::Polls {
                count: self.0,
                last: Box::new(error),
            });
        }
        tracing::warn!(stack, error = %error, "a poll failed; polling again");
        Ok(())
    }

    fn reset(&mut self) {
        self.0 = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_polls_give_up_at_the_bound_and_start_over_after_a_success() {
        let boom = || StepError::ChangeSetPending {
            status: "CREATE_PENDING".to_owned(),
            seconds: 1,
        };
        let mut failed = FailedPolls::default();
        for _ in 1..MAX_FAILED_POLLS {
            assert!(failed.note("App", boom()).is_ok());
        }
        failed.reset();
        for _ in 1..MAX_FAILED_POLLS {
            assert!(failed.note("App", boom()).is_ok());
        }
        let error = failed.note("App", boom());
        assert_eq!(
            error.unwrap_err().to_string(),
            format!(
                "the change set is still CREATE_PENDING after 1 s ({MAX_FAILED_POLLS} polls in a row failed)"
            )
        );
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
