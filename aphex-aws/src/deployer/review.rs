//! The risk gate's look at a ready change set: read its changes (every
//! page, with property values, so a `*` added to a policy is seen), turn
//! them into the stage's [`ResourceChange`]s and let the stage decide
//! ([`DeployProgress::review`]). A change set the stage stops is deleted:
//! a gate leaves nothing pending behind it.

use aphex_stages::ports::{DeployProgress, Review};
use aphex_stages::risk::{ChangeAction, ChangeDetail, Replacement, ResourceChange, parse_context};
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::Change;

use super::StepError;
use crate::client::CallError;

/// More pages than any change set has (CloudFormation pages 1,000 or so
/// changes at a time, a template holds at most 500 resources); a service
/// that keeps answering with a token is not followed forever.
const MAX_PAGES: usize = 20;

/// Reads change set `id` of stack `name` and asks `progress` whether to
/// execute it; on [`Review::Stop`] deletes it and fails with the reason.
pub(crate) async fn review(
    cfn: &Client,
    name: &str,
    id: &str,
    progress: &dyn DeployProgress,
) -> Result<(), StepError> {
    progress.step(name, "reading its change set's changes for the risk gates");
    let changes = describe_changes(cfn, name, id).await?;
    match progress.review(name, &changes) {
        Review::Execute => Ok(()),
        Review::Stop(why) => {
            super::changeset::delete_change_set(cfn, name, id).await?;
            Err(StepError::Gated { why })
        }
    }
}

/// Every resource change of change set `id`, page by page.
async fn describe_changes(cfn: &Client, name: &str, id: &str) -> Result<Vec<ResourceChange>, StepError> {
    let mut changes = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = cfn
            .describe_change_set()
            .stack_name(name)
            .change_set_name(id)
            .include_property_values(true)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|err| {
                StepError::call_while(
                    "reading the change set's changes for the risk gates failed",
                    CallError::new("CloudFormation", "DescribeChangeSet", err),
                )
            })?;
        changes.extend(page.changes().iter().filter_map(|c| resource_change(name, c)));
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => return Ok(changes),
        }
    }
    Err(StepError::TooManyPages { pages: MAX_PAGES })
}

/// The stage's view of one change (hook invocations are not resources).
fn resource_change(stack: &str, change: &Change) -> Option<ResourceChange> {
    let r = change.resource_change()?;
    Some(ResourceChange {
        stack: stack.to_owned(),
        logical_id: r.logical_resource_id().unwrap_or_default().to_owned(),
        physical_id: r.physical_resource_id().map(str::to_owned),
        resource_type: r.resource_type().unwrap_or_default().to_owned(),
        action: ChangeAction::parse(r.action().map(|a| a.as_str()).unwrap_or_default()),
        replacement: r.replacement().and_then(|x| Replacement::parse(x.as_str())),
        policy_action: r.policy_action().map(|p| p.as_str().to_owned()),
        scope: r.scope().iter().map(|s| s.as_str().to_owned()).collect(),
        details: r
            .details()
            .iter()
            .filter_map(|d| d.target())
            .map(|t| ChangeDetail {
                attribute: t.attribute().map(|a| a.as_str().to_owned()).unwrap_or_default(),
                name: t.name().map(str::to_owned),
                requires_recreation: t.requires_recreation().map(|x| x.as_str().to_owned()),
                before_value: t.before_value().map(str::to_owned),
                after_value: t.after_value().map(str::to_owned),
            })
            .collect(),
        before: r.before_context().and_then(parse_context),
        after: r.after_context().and_then(parse_context),
    })
}
