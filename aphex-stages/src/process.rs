//! Process execution: one configured command in one `bash` with
//! `set -euo pipefail` semantics, its output streamed line by line (redacted,
//! prefixed, timestamped) to the [`Reporter`], its exit code and duration
//! recorded, the last lines kept for the error. Cancellation (Ctrl-C, a
//! pod's SIGTERM) stops the whole process group.
//!
//! Output is bounded: each pipe is read in chunks into lines of at most
//! [`crate::lines::LINE_CAP`] bytes (plus a lookahead for redaction),
//! and lines wait in a queue of [`LINE_QUEUE`]: when the reporter falls
//! behind, the readers stop reading and the command blocks on its next
//! write, rather than the runner buffering its output.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{Notify, mpsc};

use crate::lines::{Line, LineSplitter, shown};
use crate::redact::{LineRedactor, Redactor};
use crate::report::{Event, Reporter, Stream};

/// How many trailing output lines an error shows.
pub(crate) const TAIL_LINES: usize = 20;

/// Lines read but not yet reported, across both pipes of a command: with
/// lines of at most 80 KiB, at most a few MiB wait.
pub const LINE_QUEUE: usize = 32;

/// Bytes read from a pipe at a time.
const READ_CHUNK: usize = 16 * 1024;

/// How long a cancelled command gets to exit after SIGTERM before SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// How long background processes a finished command left holding its
/// output open may go on before they are stopped.
const LEFTOVER_GRACE: Duration = Duration::from_secs(5);

/// A cancellation signal shared by everything one run starts. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<CancelInner>);

#[derive(Debug, Default)]
struct CancelInner {
    flag: AtomicBool,
    notify: Notify,
}

impl Cancel {
    /// A signal not yet raised.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the signal: running commands are stopped, no new one starts.
    pub fn cancel(&self) {
        self.0.flag.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    /// Whether the signal was raised.
    pub fn is_cancelled(&self) -> bool {
        self.0.flag.load(Ordering::SeqCst)
    }

    /// Resolves once the signal is raised.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            // Register before checking the flag, so a cancel in between is not lost.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// Stage it belongs to (for events).
    pub stage: String,
    /// Prefix of its output lines, e.g. `build 1/2`.
    pub prefix: String,
    /// The shell command line.
    pub command: String,
    /// Working directory.
    pub cwd: PathBuf,
    /// Variables added to the inherited environment.
    pub env: Vec<(String, String)>,
    /// Variables removed from the inherited environment.
    pub unset: Vec<String>,
}

/// How a command ended successfully.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandResult {
    /// The exit code (always 0 here).
    pub exit_code: i32,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// A command that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// `bash` could not be started.
    #[error("could not start `{command}` in {}: {source}", cwd.display())]
    Spawn {
        /// The (redacted) command.
        command: String,
        /// Its working directory.
        cwd: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The command exited non-zero or was killed.
    #[error("{}", failed_message(.command, .exit_code, .tail))]
    Failed {
        /// The (redacted) command.
        command: String,
        /// Exit code, `None` when killed by a signal.
        exit_code: Option<i32>,
        /// The last lines of its output (redacted).
        tail: Vec<String>,
    },
    /// The run was cancelled while the command ran.
    #[error("`{command}` was interrupted")]
    Interrupted {
        /// The (redacted) command.
        command: String,
    },
}

fn failed_message(command: &str, exit_code: &Option<i32>, tail: &[String]) -> String {
    let how = match exit_code {
        Some(c) => format!("exited with code {c}"),
        None => "was killed by a signal".to_owned(),
    };
    if tail.is_empty() {
        format!("`{command}` {how} (no output)")
    } else {
        format!(
            "`{command}` {how}; last {} lines of output:\n  {}",
            tail.len(),
            tail.join("\n  ")
        )
    }
}

impl ProcessError {
    /// The exit code to pass on, when the command exited with one.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            ProcessError::Failed { exit_code, .. } => *exit_code,
            _ => None,
        }
    }
}

/// Runs commands for one run: redacts, reports, honours cancellation.
#[derive(Clone)]
pub struct Exec {
    /// Where events go.
    pub reporter: Arc<dyn Reporter>,
    /// Masks secrets in everything reported.
    pub redactor: Redactor,
    /// Stops running commands.
    pub cancel: Cancel,
}

impl Exec {
    /// Runs `spec` to completion; non-zero exit is [`ProcessError::Failed`].
    pub async fn run(&self, spec: &CommandSpec) -> Result<CommandResult, ProcessError> {
        let redactor = self.redactor.with_vars(spec.env.iter().map(|(k, v)| (k, v)));
        let shown = redactor.redact(&spec.command);
        if self.cancel.is_cancelled() {
            return Err(ProcessError::Interrupted { command: shown });
        }
        self.reporter.event(&Event::CommandStarted {
            stage: spec.stage.clone(),
            prefix: spec.prefix.clone(),
            command: shown.clone(),
        });
        let started = Instant::now();
        let mut command = tokio::process::Command::new("bash");
        for name in &spec.unset {
            command.env_remove(name);
        }
        let mut child = command
            .args(["-e", "-u", "-o", "pipefail", "-c", &spec.command])
            .current_dir(&spec.cwd)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so cancelling stops everything it started.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ProcessError::Spawn {
                command: shown.clone(),
                cwd: spec.cwd.clone(),
                source,
            })?;
        let pid = child.id();
        let (tx, mut rx) = mpsc::channel(LINE_QUEUE);
        let readers = [
            tokio::spawn(read_lines(child.stdout.take(), Stream::Stdout, tx.clone())),
            tokio::spawn(read_lines(child.stderr.take(), Stream::Stderr, tx)),
        ];
        let mut out = Output {
            spec,
            stdout: redactor.lines(),
            stderr: redactor.lines(),
            tail: VecDeque::with_capacity(TAIL_LINES),
        };
        let mut interrupted = false;
        let status = loop {
            tokio::select! {
                line = rx.recv() => match line {
                    Some((stream, line)) => self.output(&mut out, stream, &line),
                    // Both pipes closed: only the exit status is left.
                    None => break child.wait().await,
                },
                status = child.wait() => {
                    // Drain what the pipes still hold before reporting the exit.
                    // A background process left behind keeps them open: it
                    // gets a grace period, then the group is stopped.
                    let drained = tokio::time::timeout(LEFTOVER_GRACE, async {
                        while let Some((stream, line)) = rx.recv().await {
                            self.output(&mut out, stream, &line);
                        }
                    })
                    .await;
                    if drained.is_err() {
                        if let Some(pid) = pid {
                            signal_group(pid, "-KILL");
                        }
                        while let Some((stream, line)) = rx.recv().await {
                            self.output(&mut out, stream, &line);
                        }
                    }
                    break status;
                }
                _ = self.cancel.cancelled(), if !interrupted => {
                    interrupted = true;
                    if let Some(pid) = pid {
                        stop_group(pid, &mut child).await;
                    }
                }
            }
        };
        for r in readers {
            r.abort();
        }
        let tail = out.tail;
        let seconds = started.elapsed().as_secs_f64();
        let status = status.map_err(|source| ProcessError::Spawn {
            command: shown.clone(),
            cwd: spec.cwd.clone(),
            source,
        })?;
        self.reporter.event(&Event::CommandFinished {
            stage: spec.stage.clone(),
            prefix: spec.prefix.clone(),
            exit_code: status.code(),
            seconds,
        });
        if interrupted {
            return Err(ProcessError::Interrupted { command: shown });
        }
        match status.code() {
            Some(0) => Ok(CommandResult {
                exit_code: 0,
                seconds,
            }),
            code => Err(ProcessError::Failed {
                command: shown,
                exit_code: code,
                tail: tail.into(),
            }),
        }
    }

    fn output(&self, out: &mut Output<'_, '_>, stream: Stream, line: &Line) {
        let redactor = match stream {
            Stream::Stdout => &mut out.stdout,
            Stream::Stderr => &mut out.stderr,
        };
        let line = shown(line, redactor);
        if out.tail.len() == TAIL_LINES {
            out.tail.pop_front();
        }
        out.tail.push_back(line.clone());
        self.reporter.event(&Event::Output {
            prefix: out.spec.prefix.clone(),
            timestamp: crate::time::now_rfc3339(),
            stream,
            line,
        });
    }
}

/// What one command's output needs while it is reported: a redactor per
/// stream (each remembers an open private key) and the last lines.
struct Output<'s, 'r> {
    spec: &'s CommandSpec,
    stdout: LineRedactor<'r>,
    stderr: LineRedactor<'r>,
    tail: VecDeque<String>,
}

/// Reads `pipe` in chunks into lines and queues them; waits while the
/// queue is full (so the command waits too), stops when nobody listens.
async fn read_lines<R: AsyncRead + Unpin>(pipe: Option<R>, stream: Stream, tx: mpsc::Sender<(Stream, Line)>) {
    let Some(mut pipe) = pipe else { return };
    let mut splitter = LineSplitter::default();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut lines = Vec::new();
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        splitter.push(&buf[..n], &mut lines);
        for line in lines.drain(..) {
            if tx.send((stream, line)).await.is_err() {
                return;
            }
        }
    }
    if let Some(last) = splitter.finish() {
        let _ = tx.send((stream, last)).await;
    }
}

/// SIGTERM to the group, then SIGKILL if it has not exited in time. Uses the
/// `kill` program: the crate forbids `unsafe`, and so a direct `kill(2)`.
async fn stop_group(pid: u32, child: &mut tokio::process::Child) {
    signal_group(pid, "-TERM");
    if tokio::time::timeout(KILL_GRACE, child.wait()).await.is_err() {
        signal_group(pid, "-KILL");
    }
}

fn signal_group(pid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args([signal, "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Whether `program` (the first word of `command`) can be found: on PATH, or
/// as a path relative to `cwd`. Shell builtins and keywords count as found.
pub(crate) fn program_of(command: &str) -> Option<String> {
    command
        .split_whitespace()
        // Skip leading `VAR=value` assignments.
        .find(|w| !w.contains('=') || w.starts_with('='))
        .map(str::to_owned)
}

/// Whether the program a command starts with is available (see [`program_of`]).
pub(crate) fn program_available(program: &str, cwd: &Path) -> bool {
    const BUILTINS: &[&str] = &[
        "cd", "echo", "export", "test", "[", "[[", "true", "false", "printf", "set", "source", ".", "exit",
        "if", "for", "while", "case", "{", "(", "!", "exec", "eval", ":", "read", "unset", "pushd", "popd",
        "trap", "wait", "command", "type",
    ];
    if BUILTINS.contains(&program) {
        return true;
    }
    if program.contains('/') {
        return cwd.join(program).exists();
    }
    which::which(program).is_ok()
}
