//! Stack events: following a stack's event log while an operation runs
//! (only events not seen before, oldest first, polled with backoff) and
//! picking the root causes out of a failure. The root-cause choice is pure
//! so it is tested without AWS.

use std::collections::HashSet;
use std::time::Duration;

use aphex_stages::ports::{DeployProgress, StackEvent};
use aws_sdk_cloudformation::Client;
use aws_smithy_types::date_time::Format;

use super::StepError;
use crate::client::CallError;

/// Reasons CloudFormation gives to resources it stopped because another one
/// failed: noise, never a root cause.
const CANCELLATION_NOISE: [&str; 3] = [
    "Resource creation cancelled",
    "Resource update cancelled",
    "Resource deletion cancelled",
];

/// Follows one stack's events: remembers what it has seen, reports new ones.
pub(crate) struct EventTail {
    stack: String,
    /// What the API is asked about: the stack ID when known (a deleted
    /// stack's events are only reachable by ID), else the name.
    target: String,
    seen: HashSet<String>,
    /// Every new event reported since [`EventTail::start`], oldest first.
    events: Vec<StackEvent>,
}

impl EventTail {
    /// Starts following `stack`: every event that exists now counts as seen,
    /// so only what the coming operation causes is reported.
    pub(crate) async fn start(cfn: &Client, stack: &str) -> Result<Self, StepError> {
        Self::start_at(cfn, stack, stack).await
    }

    /// Like [`EventTail::start`], asking about `target` (the stack ID).
    pub(crate) async fn start_at(cfn: &Client, stack: &str, target: &str) -> Result<Self, StepError> {
        let mut tail = Self {
            stack: stack.to_owned(),
            target: target.to_owned(),
            seen: HashSet::new(),
            events: Vec::new(),
        };
        // The newest page is enough: later polls stop at the first page that
        // holds an event already seen.
        match cfn.describe_stack_events().stack_name(target).send().await {
            Ok(page) => {
                for event in page.stack_events() {
                    if let Some(id) = event.event_id() {
                        tail.seen.insert(id.to_owned());
                    }
                }
            }
            // A stack that does not exist yet has no events to skip.
            Err(err) if super::is_missing_stack(&err) => {}
            Err(err) => {
                return Err(StepError::call_while(
                    format!("reading the events of stack {stack}"),
                    CallError::new("CloudFormation", "DescribeStackEvents", err),
                ));
            }
        }
        Ok(tail)
    }

    /// Fetches events not seen before, reports them to `progress` oldest
    /// first, and says how many there were.
    pub(crate) async fn poll(
        &mut self,
        cfn: &Client,
        progress: &dyn DeployProgress,
    ) -> Result<usize, StepError> {
        let mut fresh = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = match cfn
                .describe_stack_events()
                .stack_name(&self.target)
                .set_next_token(token.take())
                .send()
                .await
            {
                Ok(page) => page,
                Err(err) if super::is_missing_stack(&err) => break,
                Err(err) => {
                    return Err(StepError::call_while(
                        format!("reading the events of stack {}", self.stack),
                        CallError::new("CloudFormation", "DescribeStackEvents", err),
                    ));
                }
            };
            let mut reached_seen = false;
            for event in page.stack_events() {
                let Some(id) = event.event_id() else { continue };
                if self.seen.contains(id) {
                    reached_seen = true;
                    continue;
                }
                self.seen.insert(id.to_owned());
                fresh.push((event.timestamp().copied(), convert(&self.stack, event)));
            }
            // Events come newest first: once a page reaches known events,
            // older pages hold nothing new.
            match page.next_token() {
                Some(next) if !reached_seen => token = Some(next.to_owned()),
                _ => break,
            }
        }
        // Oldest first; a stable sort keeps the service's order for equal
        // timestamps (reversed, since it lists newest first).
        fresh.reverse();
        fresh.sort_by_key(|(at, _)| *at);
        let fresh: Vec<StackEvent> = fresh.into_iter().map(|(_, event)| event).collect();
        for event in &fresh {
            progress.event(event);
        }
        let count = fresh.len();
        self.events.extend(fresh);
        Ok(count)
    }

    /// Whether the stack's own `*_IN_PROGRESS` event has been seen: the
    /// operation requested has begun.
    pub(crate) fn saw_stack_operation_begin(&self) -> bool {
        self.events
            .iter()
            .any(|e| is_stack_itself(e) && e.status.ends_with("_IN_PROGRESS"))
    }

    /// Every event reported so far, oldest first.
    pub(crate) fn events(&self) -> &[StackEvent] {
        &self.events
    }
}

fn convert(stack: &str, event: &aws_sdk_cloudformation::types::StackEvent) -> StackEvent {
    StackEvent {
        stack: stack.to_owned(),
        logical_id: event.logical_resource_id().unwrap_or_default().to_owned(),
        resource_type: event.resource_type().unwrap_or_default().to_owned(),
        status: event
            .resource_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        reason: event
            .resource_status_reason()
            .filter(|r| !r.is_empty())
            .map(str::to_owned),
        timestamp: event
            .timestamp()
            .and_then(|t| t.fmt(Format::DateTime).ok())
            .unwrap_or_default(),
    }
}

/// The events that explain a failure: the `*_FAILED` events of resources,
/// oldest first, without the "Resource creation cancelled" noise; when no
/// resource failed, the stack's own failed events.
pub(crate) fn root_causes(events: &[StackEvent]) -> Vec<StackEvent> {
    let failed = events
        .iter()
        .filter(|e| e.status.ends_with("_FAILED") && !is_noise(e));
    let (stack_level, resources): (Vec<&StackEvent>, Vec<&StackEvent>) =
        failed.partition(|e| is_stack_itself(e));
    let chosen = if resources.is_empty() {
        stack_level
    } else {
        resources
    };
    chosen.into_iter().cloned().collect()
}

fn is_noise(event: &StackEvent) -> bool {
    event
        .reason
        .as_deref()
        .is_some_and(|r| CANCELLATION_NOISE.iter().any(|n| r.contains(n)))
}

fn is_stack_itself(event: &StackEvent) -> bool {
    event.resource_type == "AWS::CloudFormation::Stack" && event.logical_id == event.stack
}

/// One line per root cause: `Param (AWS::SSM::Parameter) CREATE_FAILED: reason`.
pub(crate) fn describe_causes(causes: &[StackEvent]) -> String {
    causes
        .iter()
        .map(|e| {
            let reason = e.reason.as_deref().unwrap_or("no reason given");
            format!("{} ({}) {}: {}", e.logical_id, e.resource_type, e.status, reason)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Polling intervals that grow while nothing happens and start over when
/// something does.
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            current: initial,
        }
    }

    /// The next wait: doubles up to the maximum.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.current;
        self.current = (self.current * 2).min(self.max);
        delay
    }

    /// Something happened: poll quickly again.
    pub(crate) fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(logical: &str, kind: &str, status: &str, reason: Option<&str>, at: &str) -> StackEvent {
        StackEvent {
            stack: "App".into(),
            logical_id: logical.into(),
            resource_type: kind.into(),
            status: status.into(),
            reason: reason.map(Into::into),
            timestamp: at.into(),
        }
    }

    #[test]
    fn root_causes_skip_cancellation_noise_and_the_stack_summary() {
        let events = vec![
            event(
                "App",
                "AWS::CloudFormation::Stack",
                "CREATE_IN_PROGRESS",
                None,
                "t1",
            ),
            event(
                "Queue",
                "AWS::SQS::Queue",
                "CREATE_FAILED",
                Some("Resource creation cancelled"),
                "t2",
            ),
            event(
                "Param",
                "AWS::SSM::Parameter",
                "CREATE_FAILED",
                Some("Type Bogus is invalid"),
                "t3",
            ),
            event(
                "App",
                "AWS::CloudFormation::Stack",
                "ROLLBACK_IN_PROGRESS",
                Some("The following resource(s) failed to create: [Param]"),
                "t4",
            ),
            event("Param", "AWS::SSM::Parameter", "DELETE_COMPLETE", None, "t5"),
            event(
                "App",
                "AWS::CloudFormation::Stack",
                "ROLLBACK_COMPLETE",
                None,
                "t6",
            ),
        ];
        let causes = root_causes(&events);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].logical_id, "Param");
        assert_eq!(
            describe_causes(&causes),
            "Param (AWS::SSM::Parameter) CREATE_FAILED: Type Bogus is invalid"
        );
    }

    #[test]
    fn root_causes_fall_back_to_the_stack_when_no_resource_failed() {
        let events = vec![
            event(
                "App",
                "AWS::CloudFormation::Stack",
                "UPDATE_IN_PROGRESS",
                None,
                "t1",
            ),
            event(
                "App",
                "AWS::CloudFormation::Stack",
                "UPDATE_FAILED",
                Some("Export in use"),
                "t2",
            ),
        ];
        let causes = root_causes(&events);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].reason.as_deref(), Some("Export in use"));
    }

    #[test]
    fn root_causes_of_a_success_are_empty() {
        let events = vec![
            event("Param", "AWS::SSM::Parameter", "CREATE_COMPLETE", None, "t1"),
            event("App", "AWS::CloudFormation::Stack", "CREATE_COMPLETE", None, "t2"),
        ];
        assert!(root_causes(&events).is_empty());
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let waits: Vec<u128> = (0..4).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(waits, [100, 200, 350, 350]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(100));
    }
}
