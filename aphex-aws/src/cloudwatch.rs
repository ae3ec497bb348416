//! The CloudWatch metrics sink: data points go to namespace `Aphex` with the
//! dimensions the caller gives (pipeline / environment / stack / stage), in
//! batched `PutMetricData` calls.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};

use aphex_stages::ports::{Metric, MetricUnit, MetricsSink, PortError};

use crate::client::AwsError;

/// The namespace of every Aphex metric.
pub const NAMESPACE: &str = "Aphex";

/// Data points per `PutMetricData` call (CloudWatch takes up to 1,000 and
/// 1 MB; 500 of ours stay far below the size limit).
pub const BATCH_SIZE: usize = 500;

/// Metrics to CloudWatch.
#[derive(Debug, Clone)]
pub struct CloudWatchMetrics {
    client: aws_sdk_cloudwatch::Client,
    namespace: String,
    batch_size: usize,
}

impl CloudWatchMetrics {
    /// A sink writing to namespace [`NAMESPACE`].
    pub fn new(config: &SdkConfig) -> Self {
        CloudWatchMetrics {
            client: aws_sdk_cloudwatch::Client::new(config),
            namespace: NAMESPACE.to_owned(),
            batch_size: BATCH_SIZE,
        }
    }

    /// Sends at most `size` data points per call (at least 1, at most CloudWatch's 1,000).
    pub fn with_batch_size(mut self, size: usize) -> Self {
        self.batch_size = size.clamp(1, 1_000);
        self
    }

    /// The namespace written to.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}

#[async_trait]
impl MetricsSink for CloudWatchMetrics {
    async fn emit(&self, metrics: &[Metric]) -> Result<(), PortError> {
        let now = aws_smithy_types::DateTime::from(std::time::SystemTime::now());
        for batch in metrics.chunks(self.batch_size) {
            let data: Vec<MetricDatum> = batch.iter().map(|m| datum(m, now)).collect();
            self.client
                .put_metric_data()
                .namespace(&self.namespace)
                .set_metric_data(Some(data))
                .send()
                .await
                .map_err(|e| PortError::Other {
                    context: format!(
                        "sending {} metrics to CloudWatch namespace {}",
                        batch.len(),
                        self.namespace
                    ),
                    source: Box::new(AwsError::new("CloudWatch", "PutMetricData", e)),
                })?;
        }
        Ok(())
    }
}

fn datum(metric: &Metric, timestamp: aws_smithy_types::DateTime) -> MetricDatum {
    let dimensions = metric
        .dimensions
        .iter()
        .map(|(name, value)| Dimension::builder().name(name).value(value).build())
        .collect();
    MetricDatum::builder()
        .metric_name(&metric.name)
        .value(metric.value)
        .unit(unit(metric.unit))
        .timestamp(timestamp)
        .set_dimensions(Some(dimensions))
        .build()
}

fn unit(unit: MetricUnit) -> StandardUnit {
    match unit {
        MetricUnit::Count => StandardUnit::Count,
        MetricUnit::Seconds => StandardUnit::Seconds,
        MetricUnit::Bytes => StandardUnit::Bytes,
    }
}
