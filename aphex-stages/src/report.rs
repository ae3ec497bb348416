//! What stages tell the outside world while they run: the [`Reporter`] port
//! and its events. The CLI draws them (progress bars or plain lines), the
//! runner logs them as JSON lines. Every text in an event is already
//! redacted.

use std::sync::Mutex;

use crate::record::Status;

/// Which stream a command's output line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Something worth showing.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A stage started.
    StageStarted {
        /// Stage name (`build`, `deploy-dev`, ...).
        stage: String,
    },
    /// A stage ended.
    StageFinished {
        /// Stage name.
        stage: String,
        /// How it ended.
        status: Status,
        /// The error, when it failed.
        error: Option<String>,
        /// Seconds it took.
        seconds: f64,
    },
    /// A human-readable step inside a stage.
    Info {
        /// Stage name.
        stage: String,
        /// The message.
        message: String,
    },
    /// A warning inside a stage (the stage goes on).
    Warning {
        /// Stage name.
        stage: String,
        /// The message.
        message: String,
    },
    /// A command started.
    CommandStarted {
        /// Stage name.
        stage: String,
        /// The prefix its output lines carry (`build 1/2`).
        prefix: String,
        /// The command line.
        command: String,
    },
    /// One line of a command's output.
    Output {
        /// The prefix (`build 1/2`).
        prefix: String,
        /// RFC 3339 time the line was read.
        timestamp: String,
        /// Stream.
        stream: Stream,
        /// The line, without its newline.
        line: String,
    },
    /// A command ended.
    CommandFinished {
        /// Stage name.
        stage: String,
        /// The prefix.
        prefix: String,
        /// Exit code (`None` when killed by a signal).
        exit_code: Option<i32>,
        /// Seconds it took.
        seconds: f64,
    },
}

impl Event {
    /// A one-line rendering for plain-text output and logs.
    pub fn to_line(&self) -> String {
        match self {
            Event::StageStarted { stage } => format!("==> {stage}"),
            Event::StageFinished {
                stage,
                status,
                error,
                seconds,
            } => match error {
                Some(e) => format!("<== {stage}: {status:?} after {seconds:.1}s: {e}"),
                None => format!("<== {stage}: {status:?} after {seconds:.1}s"),
            },
            Event::Info { stage, message } => format!("[{stage}] {message}"),
            Event::Warning { stage, message } => format!("[{stage}] warning: {message}"),
            Event::CommandStarted { prefix, command, .. } => format!("[{prefix}] $ {command}"),
            Event::Output {
                prefix,
                timestamp,
                line,
                ..
            } => format!("[{prefix}] {timestamp} | {line}"),
            Event::CommandFinished {
                prefix,
                exit_code,
                seconds,
                ..
            } => match exit_code {
                Some(c) => format!("[{prefix}] exit {c} after {seconds:.1}s"),
                None => format!("[{prefix}] killed by a signal after {seconds:.1}s"),
            },
        }
    }
}

/// Receives events. Implementations must be quick: they run inline.
pub trait Reporter: Send + Sync {
    /// One event.
    fn event(&self, event: &Event);
}

/// Logs every event through `tracing` (JSON lines in pods, text elsewhere,
/// as the binary's subscriber decides).
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingReporter;

impl Reporter for TracingReporter {
    fn event(&self, event: &Event) {
        match event {
            Event::Warning { .. } => tracing::warn!("{}", event.to_line()),
            Event::StageFinished {
                status: Status::Failed,
                ..
            } => tracing::error!("{}", event.to_line()),
            _ => tracing::info!("{}", event.to_line()),
        }
    }
}

/// Keeps every event in memory (tests, and the stage log files).
#[derive(Debug, Default)]
pub struct CollectingReporter {
    events: Mutex<Vec<Event>>,
}

impl CollectingReporter {
    /// A copy of the events so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().expect("reporter lock").clone()
    }

    /// Every event as one line each, joined.
    pub fn text(&self) -> String {
        self.events()
            .iter()
            .map(Event::to_line)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Reporter for CollectingReporter {
    fn event(&self, event: &Event) {
        self.events.lock().expect("reporter lock").push(event.clone());
    }
}
