//! What a CDK-bootstrapped account has, prepared in the emulator: the SSM
//! parameter `/cdk-bootstrap/hnb659fds/version` (CDK templates read it
//! through their `BootstrapVersion` parameter) and the assets bucket
//! `cdk-hnb659fds-assets-<account>-<region>`. Used by the deployer tests and
//! by `cargo xtask demo`.

use anyhow::Context as _;
use aws_config::{Region, SdkConfig};

/// The CDK's default bootstrap qualifier.
pub const QUALIFIER: &str = "hnb659fds";

/// The bootstrap version written to SSM (a recent `cdk bootstrap`).
pub const BOOTSTRAP_VERSION: &str = "30";

/// An SDK configuration acting directly in `account` and `region` against
/// the emulator (it takes a 12-digit access key ID as the account).
pub async fn account_config(account: &str, region: &str) -> SdkConfig {
    crate::emulator()
        .aws_config_in(account)
        .await
        .to_builder()
        .region(Region::new(region.to_owned()))
        .build()
}

/// The assets bucket `cdk bootstrap` creates for `account` and `region`.
pub fn assets_bucket(account: &str, region: &str) -> String {
    format!("cdk-{QUALIFIER}-assets-{account}-{region}")
}

/// Puts the bootstrap version parameter and creates the assets bucket in
/// `account`/`region`; running it again changes nothing.
pub async fn prepare_bootstrap(account: &str, region: &str) -> anyhow::Result<()> {
    let config = account_config(account, region).await;
    aws_sdk_ssm::Client::new(&config)
        .put_parameter()
        .name(format!("/cdk-bootstrap/{QUALIFIER}/version"))
        .value(BOOTSTRAP_VERSION)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .with_context(|| format!("putting the CDK bootstrap version parameter in {account}/{region}"))?;

    let s3 = aphex_aws::client::s3(&config);
    let bucket = assets_bucket(account, region);
    let mut create = s3.create_bucket().bucket(&bucket);
    // us-east-1 is the one region that takes no location constraint.
    if region != "us-east-1" {
        create = create.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                .build(),
        );
    }
    match create.send().await {
        Ok(_) => Ok(()),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists()) =>
        {
            Ok(())
        }
        Err(err) => Err(anyhow::Error::new(err))
            .with_context(|| format!("creating the CDK assets bucket {bucket} in {account}/{region}")),
    }
}
