//! The CloudWatch metrics sink: data points go to the namespace of their
//! pipeline, `Aphex/<pipeline>` (the one its IAM role may write to, by the
//! `cloudwatch:namespace` condition), with the dimensions the caller gives
//! (pipeline / environment / stack / stage), in batched `PutMetricData` calls.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};

use aphex_stages::ports::{Metric, MetricUnit, MetricsError, MetricsSink};

use crate::client::AwsError;

/// The dimension that names a metric's pipeline, and so its namespace.
pub const PIPELINE_DIMENSION: &str = "pipeline";

/// Data points per `PutMetricData` call (CloudWatch takes up to 1,000 and
/// 1 MB; 500 of ours stay far below the size limit).
pub const BATCH_SIZE: usize = 500;

/// Metrics to CloudWatch.
#[derive(Debug, Clone)]
pub struct CloudWatchMetrics {
    client: aws_sdk_cloudwatch::Client,
    batch_size: usize,
}

impl CloudWatchMetrics {
    /// A sink writing each metric to its pipeline's namespace ([`namespace_of`]).
    pub fn new(config: &SdkConfig) -> Self {
        CloudWatchMetrics {
            client: aws_sdk_cloudwatch::Client::new(config),
            batch_size: BATCH_SIZE,
        }
    }

    /// Sends at most `size` data points per call (at least 1, at most CloudWatch's 1,000).
    pub fn with_batch_size(mut self, size: usize) -> Self {
        self.batch_size = size.clamp(1, 1_000);
        self
    }
}

/// The namespace of `metric`: `Aphex/<pipeline>` from its pipeline
/// dimension, or `None` without one.
pub fn namespace_of(metric: &Metric) -> Option<String> {
    metric
        .dimensions
        .iter()
        .find(|(name, _)| name == PIPELINE_DIMENSION)
        .map(|(_, pipeline)| aphex_template::cloudformation::metrics_namespace(pipeline))
}

#[async_trait]
impl MetricsSink for CloudWatchMetrics {
    async fn emit(&self, metrics: &[Metric]) -> Result<(), MetricsError> {
        let now = aws_smithy_types::DateTime::from(std::time::SystemTime::now());
        // One namespace per call: group by pipeline, keeping each group's order.
        let mut groups: Vec<(String, Vec<&Metric>)> = Vec::new();
        for m in metrics {
            let namespace = namespace_of(m).ok_or_else(|| MetricsError::MissingDimension {
                metric: m.name.clone(),
                sink: "CloudWatch".to_owned(),
                dimension: PIPELINE_DIMENSION.to_owned(),
            })?;
            match groups.iter_mut().find(|(n, _)| *n == namespace) {
                Some((_, group)) => group.push(m),
                None => groups.push((namespace, vec![m])),
            }
        }
        for (namespace, group) in &groups {
            self.send(namespace, group, now).await?;
        }
        Ok(())
    }
}

impl CloudWatchMetrics {
    async fn send(
        &self,
        namespace: &str,
        metrics: &[&Metric],
        now: aws_smithy_types::DateTime,
    ) -> Result<(), MetricsError> {
        for batch in metrics.chunks(self.batch_size) {
            let data: Vec<MetricDatum> = batch.iter().map(|m| datum(m, now)).collect();
            self.client
                .put_metric_data()
                .namespace(namespace)
                .set_metric_data(Some(data))
                .send()
                .await
                .map_err(|e| MetricsError::Backend {
                    context: format!(
                        "sending {} metrics to CloudWatch namespace {}",
                        batch.len(),
                        namespace
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
