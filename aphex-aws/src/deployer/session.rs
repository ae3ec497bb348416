//! AWS sessions for one deploy: the base configuration from the default
//! chain, or a role assumed from it (the deploy role, the environment's
//! `roleArn`, an asset destination's publishing role), per region. Assuming
//! happens once per role and region, and is checked at once so a refused
//! role is reported as such rather than as a failed CloudFormation call.
//! Assuming goes through [`crate::sts::assume_role`] except for roles that
//! need an external id, which it does not take.

use std::collections::HashMap;

use aws_config::Region;
use aws_config::SdkConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

use super::StepError;

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
    pub(crate) async fn config(&mut self, role: Option<&Role>, region: &str) -> Result<SdkConfig, StepError> {
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
            Some(role) => match &role.external_id {
                None => crate::sts::assume_role(&regional, &role.arn, "aphex-deploy")
                    .await
                    .map_err(|err| StepError::AssumeDeployRole {
                        source: Box::new(err),
                    })?,
                // `sts::assume_role` takes no external id; asset publishing
                // roles may need one.
                Some(external_id) => {
                    let provider = AssumeRoleProvider::builder(role.arn.clone())
                        .session_name("aphex-deploy")
                        .external_id(external_id.clone())
                        .configure(&regional)
                        .build()
                        .await;
                    // Fail here, naming the role, instead of at the first call.
                    provider.provide_credentials().await.map_err(|source| {
                        StepError::AssumeRoleWithExternalId {
                            role: role.arn.clone(),
                            source,
                        }
                    })?;
                    regional
                        .to_builder()
                        .credentials_provider(SharedCredentialsProvider::new(provider))
                        .build()
                }
            },
        };
        self.cache.insert(key, config.clone());
        Ok(config)
    }
}
