//! AWS sessions for one deploy: the base configuration from the default
//! chain, or a role assumed from it (the deploy role, the environment's
//! `roleArn`, an asset destination's publishing role), per region. Assuming
//! happens once per role and region, and is checked at once so a refused
//! role is reported as such rather than as a failed CloudFormation call.
//! Assuming goes through [`crate::sts::assume_role`].

use std::collections::HashMap;

use aws_config::Region;
use aws_config::SdkConfig;

const ASSUME_HINT: &str = "check that the role exists (is the account CDK-bootstrapped?) and that the current credentials may assume it";

/// A role to act as.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Role {
    pub(crate) arn: String,
    pub(crate) external_id: Option<String>,
}

/// The sessions of one deploy, keyed by role and region.
pub(crate) struct Sessions {
    base: SdkConfig,
    cache: HashMap<(Option<Role>, String), SdkConfig>,
}

impl Sessions {
    pub(crate) fn new(base: SdkConfig) -> Self {
        Self {
            base,
            cache: HashMap::new(),
        }
    }

    /// A configuration acting as `role` (or the base credentials) in `region`.
    pub(crate) async fn config(&mut self, role: Option<&Role>, region: &str) -> Result<SdkConfig, String> {
        let key = (role.cloned(), region.to_owned());
        if let Some(config) = self.cache.get(&key) {
            return Ok(config.clone());
        }
        let regional = self
            .base
            .to_builder()
            .region(Region::new(region.to_owned()))
            .build();
        let config = match role {
            None => regional,
            Some(role) => {
                crate::sts::assume_role(&regional, &role.arn, role.external_id.as_deref(), "aphex-deploy")
                    .await
                    .map_err(|err| format!("{err}; {ASSUME_HINT}"))?
            }
        };
        self.cache.insert(key, config.clone());
        Ok(config)
    }
}
