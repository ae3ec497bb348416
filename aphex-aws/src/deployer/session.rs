//! AWS sessions for a deployer's stacks: the base configuration from the default
//! chain, or a role assumed from it (the deploy role, the environment's
//! `roleArn`, an asset destination's publishing role), per region. Assuming
//! happens once per role and region, and is checked at once so a refused
//! role is reported as such rather than as a failed CloudFormation call.
//! Assuming goes through [`crate::sts::assume_role`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_config::Region;
use aws_config::SdkConfig;
use tokio::sync::OnceCell;

use super::StepError;

/// A role to act as.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Role {
    pub(crate) arn: String,
    pub(crate) external_id: Option<String>,
}

/// A role (or none: the base credentials) in a region.
type SessionKey = (Option<Role>, String);

/// The sessions of a deployer, keyed by role and region, shared by every
/// stack it deploys: each role is assumed once per run, not once per stack
/// (the credentials refresh themselves, see [`crate::sts::assume_role`]).
#[derive(Debug)]
pub(crate) struct Sessions {
    base: SdkConfig,
    cache: Mutex<HashMap<SessionKey, Arc<OnceCell<SdkConfig>>>>,
}

impl Sessions {
    pub(crate) fn new(base: SdkConfig) -> Self {
        Self {
            base,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// A configuration acting as `role` (or the base credentials) in
    /// `region`. Stacks deploying at once that need the same one wait for
    /// the first to assume it; a refusal is not kept, so a later stack tries
    /// again.
    pub(crate) async fn config(&self, role: Option<&Role>, region: &str) -> Result<SdkConfig, StepError> {
        let key = (role.cloned(), region.to_owned());
        let cell = self
            .cache
            .lock()
            .expect("sessions lock")
            .entry(key)
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            let regional = self
                .base
                .to_builder()
                .region(Region::new(region.to_owned()))
                .build();
            match role {
                None => Ok(regional),
                Some(role) => {
                    crate::sts::assume_role(&regional, &role.arn, role.external_id.as_deref(), "aphex-deploy")
                        .await
                        .map_err(|err| StepError::AssumeDeployRole {
                            source: Box::new(err),
                        })
                }
            }
        })
        .await
        .cloned()
    }
}
