//! The JSON-lines metrics sink: one line per data point, appended, each with
//! the time it was emitted.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::ports::{Metric, MetricsError, MetricsSink};

/// Metrics appended to a file.
#[derive(Debug)]
pub struct JsonLinesMetrics {
    path: PathBuf,
    // Serializes appends from concurrent emitters within one process.
    lock: Mutex<()>,
}

impl JsonLinesMetrics {
    /// A sink appending to `path` (created on first emit).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JsonLinesMetrics {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }
}

#[async_trait]
impl MetricsSink for JsonLinesMetrics {
    async fn emit(&self, metrics: &[Metric]) -> Result<(), MetricsError> {
        let now = crate::time::now_rfc3339();
        let mut text = String::new();
        for m in metrics {
            let mut line = serde_json::to_value(m).expect("metric serializes");
            line["timestamp"] = serde_json::Value::String(now.clone());
            text.push_str(&line.to_string());
            text.push('\n');
        }
        let _guard = self.lock.lock().expect("metrics lock");
        if let Some(dir) = self.path.parent() {
            crate::files::create_private_dir(dir)
                .map_err(MetricsError::io(format!("creating {}", dir.display())))?;
        }
        let mut file = crate::files::append_private_file(&self.path)
            .map_err(MetricsError::io(format!("opening {}", self.path.display())))?;
        // One write call per batch keeps lines whole.
        file.write_all(text.as_bytes())
            .map_err(MetricsError::io(format!("appending to {}", self.path.display())))
    }
}
