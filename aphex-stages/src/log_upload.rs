//! A stage's log, stored in the run store while the stage runs, so that it
//! outlives the pod (Argo deletes a succeeded stage's pod) and can be
//! followed (`aphex logs --follow`).
//!
//! [`LogUpload`] is a [`Reporter`] in front of the stage's own: each event's
//! line (already redacted) joins a buffer, and a task stores the buffer in
//! pieces of about [`PIECE_BYTES`] every [`UPLOAD_EVERY`] (sooner when a
//! piece is full), replacing the newest piece as it grows. A log past
//! [`LOG_CAP`] loses its oldest pieces: the reader sees that it starts
//! later and says so. Lines that come faster than the store takes them are
//! dropped past [`PENDING_CAP`] bytes, with a note where they were, so the
//! runner's memory stays bounded whatever a build prints.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::ports::{RecordError, RunRecorder};
use crate::report::{Event, Reporter};

/// The size a log piece is closed at (a longer line makes a longer piece).
pub const PIECE_BYTES: usize = 1024 * 1024;
/// The most a stage's stored log keeps (its newest pieces up to this
/// size): the cap of the stage's log file too.
pub use crate::stage_log::LOG_CAP;
/// How often the growing piece is stored.
pub const UPLOAD_EVERY: Duration = Duration::from_secs(3);
/// The most output waiting for the store; more is dropped, with a note.
pub const PENDING_CAP: usize = 4 * 1024 * 1024;

/// The sizes and pace of an upload ([`Limits::default`]: the constants
/// above; tests take smaller ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// [`PIECE_BYTES`].
    pub piece_bytes: usize,
    /// [`LOG_CAP`].
    pub log_cap: u64,
    /// [`PENDING_CAP`].
    pub pending_cap: usize,
    /// [`UPLOAD_EVERY`].
    pub every: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            piece_bytes: PIECE_BYTES,
            log_cap: LOG_CAP,
            pending_cap: PENDING_CAP,
            every: UPLOAD_EVERY,
        }
    }
}

/// Where a stage's log goes: which store, run and stage.
#[derive(Clone)]
pub struct LogTarget {
    /// The run store.
    pub runs: Arc<dyn RunRecorder>,
    /// The pipeline.
    pub pipeline: String,
    /// The run id.
    pub id: String,
    /// The stage (`build`, `deploy-dev`).
    pub stage: String,
}

/// Output not yet handed to the store.
#[derive(Default)]
struct Pending {
    text: Vec<u8>,
    /// Bytes dropped since the last upload because `text` was full.
    dropped: u64,
}

/// Why a stage's log could not be stored in full.
#[derive(Debug, thiserror::Error)]
pub enum LogUploadError {
    /// The run store refused a piece (the first such error).
    #[error(transparent)]
    Store(#[from] RecordError),
    /// The uploading task panicked or was cancelled.
    #[error("storing the stage's log: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Reports through `inner` and stores the log as it goes. Call
/// [`LogUpload::finish`] when the stage ends.
pub struct LogUpload {
    inner: Arc<dyn Reporter>,
    limits: Limits,
    pending: Arc<Mutex<Pending>>,
    wake: Arc<Notify>,
    stop: Arc<Notify>,
    task: Mutex<Option<JoinHandle<Result<(), RecordError>>>>,
}

impl LogUpload {
    /// Starts storing `target`'s log within `limits`; needs a Tokio runtime.
    pub fn start(target: LogTarget, inner: Arc<dyn Reporter>, limits: Limits) -> Arc<Self> {
        let pending = Arc::new(Mutex::new(Pending::default()));
        let (wake, stop) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let every = limits.every;
        let mut pieces = Pieces::new(target, pending.clone(), limits);
        let (woken, stopped) = (wake.clone(), stop.clone());
        let task = tokio::spawn(async move {
            loop {
                let last = tokio::select! {
                    () = tokio::time::sleep(every) => false,
                    () = woken.notified() => false,
                    () = stopped.notified() => true,
                };
                pieces.store().await;
                if last {
                    return pieces.first_error.map_or(Ok(()), Err);
                }
            }
        });
        Arc::new(LogUpload {
            inner,
            limits,
            pending,
            wake,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// Stores what is left and stops; the first storing error, if any (the
    /// stage's outcome does not depend on its log).
    pub async fn finish(&self) -> Result<(), LogUploadError> {
        let task = self.task.lock().expect("upload lock").take();
        let Some(task) = task else {
            return Ok(());
        };
        self.stop.notify_one();
        task.await??;
        Ok(())
    }
}

impl Reporter for LogUpload {
    fn event(&self, event: &Event) {
        self.inner.event(event);
        let line = event.to_line();
        let mut pending = self.pending.lock().expect("pending lock");
        if pending.text.len() + line.len() + 1 > self.limits.pending_cap {
            pending.dropped += line.len() as u64 + 1;
            return;
        }
        pending.text.extend_from_slice(line.as_bytes());
        pending.text.push(b'\n');
        if pending.text.len() >= self.limits.piece_bytes {
            self.wake.notify_one();
        }
    }
}

/// The uploading side: the growing piece and what is stored.
struct Pieces {
    target: LogTarget,
    pending: Arc<Mutex<Pending>>,
    limits: Limits,
    /// The index of the growing piece.
    index: u64,
    /// The growing piece.
    current: Vec<u8>,
    /// Whether `current` changed since it was stored.
    unsaved: bool,
    /// Closed pieces stored: index and size, oldest first.
    stored: VecDeque<(u64, u64)>,
    first_error: Option<RecordError>,
}

impl Pieces {
    fn new(target: LogTarget, pending: Arc<Mutex<Pending>>, limits: Limits) -> Self {
        Pieces {
            target,
            pending,
            limits,
            index: 0,
            current: Vec::new(),
            unsaved: false,
            stored: VecDeque::new(),
            first_error: None,
        }
    }

    /// Moves the pending output into pieces and stores what changed.
    async fn store(&mut self) {
        let (text, dropped) = {
            let mut p = self.pending.lock().expect("pending lock");
            (std::mem::take(&mut p.text), std::mem::take(&mut p.dropped))
        };
        let mut incoming = text;
        if dropped > 0 {
            incoming.extend_from_slice(
                format!(
                    "[aphex: {dropped} bytes of output were dropped here: they came faster than the log could be stored]\n"
                )
                .as_bytes(),
            );
        }
        for line in incoming.split_inclusive(|b| *b == b'\n') {
            if !self.current.is_empty() && self.current.len() + line.len() > self.limits.piece_bytes {
                self.close_piece().await;
            }
            self.current.extend_from_slice(line);
            self.unsaved = true;
        }
        if self.unsaved {
            self.put(self.index, self.current.clone()).await;
            self.unsaved = false;
        }
        self.keep_under_cap().await;
    }

    /// Stores the growing piece for good and starts the next.
    async fn close_piece(&mut self) {
        let piece = std::mem::take(&mut self.current);
        let size = piece.len() as u64;
        self.put(self.index, piece).await;
        self.stored.push_back((self.index, size));
        self.index += 1;
        self.unsaved = false;
    }

    /// Removes the oldest closed pieces while the log is over the cap.
    async fn keep_under_cap(&mut self) {
        let mut total: u64 = self.stored.iter().map(|(_, b)| b).sum::<u64>() + self.current.len() as u64;
        while total > self.limits.log_cap {
            let Some((index, bytes)) = self.stored.pop_front() else {
                break;
            };
            let t = &self.target;
            if let Err(e) = t.runs.remove_log_chunk(&t.pipeline, &t.id, &t.stage, index).await {
                self.first_error.get_or_insert(e);
            }
            total -= bytes;
        }
    }

    async fn put(&mut self, index: u64, text: Vec<u8>) {
        let t = &self.target;
        if let Err(e) = t
            .runs
            .put_log_chunk(&t.pipeline, &t.id, &t.stage, index, &text)
            .await
        {
            self.first_error.get_or_insert(e);
        }
    }
}

/// The note a reader shows before a log whose oldest pieces were dropped
/// (its first stored piece is `first`), or `None`.
pub fn cut_note(first: u64) -> Option<String> {
    let (piece, was) = if first == 1 {
        ("piece", "was")
    } else {
        ("pieces", "were")
    };
    (first > 0).then(|| {
        format!(
            "[aphex: the first {first} {piece} of this log ({} MiB each) {was} dropped to keep it under {} MiB; what follows is its tail]\n",
            PIECE_BYTES / (1024 * 1024),
            LOG_CAP / (1024 * 1024),
        )
    })
}

/// Where a reader is in a stage's stored log: the piece, and the bytes of
/// it already read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LogCursor {
    index: u64,
    offset: u64,
}

/// What `stage`'s stored log gained since `cursor` (from the start: all of
/// it, behind [`cut_note`] when its oldest pieces are gone), and where to
/// read on from. `chunks` is the run's listing ([`RunRecorder::log_chunks`]).
pub async fn read_since(
    runs: &dyn RunRecorder,
    pipeline: &str,
    id: &str,
    stage: &str,
    chunks: &[crate::ports::LogChunk],
    cursor: LogCursor,
) -> Result<(Vec<u8>, LogCursor), RecordError> {
    let mut indexes: Vec<u64> = chunks
        .iter()
        .filter(|c| c.stage == stage)
        .map(|c| c.index)
        .collect();
    indexes.sort_unstable();
    let (Some(&first), Some(&last)) = (indexes.first(), indexes.last()) else {
        return Ok((Vec::new(), cursor));
    };
    let mut text = Vec::new();
    let mut cursor = cursor;
    if cursor.index < first {
        let note = if cursor == LogCursor::default() {
            cut_note(first).unwrap_or_default()
        } else {
            "[aphex: part of this log was dropped to keep it under its cap while it was followed]\n"
                .to_owned()
        };
        text.extend_from_slice(note.as_bytes());
        cursor = LogCursor {
            index: first,
            offset: 0,
        };
    }
    let start = cursor.index;
    for index in indexes.into_iter().filter(|i| *i >= start) {
        let piece = match runs.log_chunk(pipeline, id, stage, index).await {
            Ok(p) => p,
            // Dropped by the cap between the listing and the read.
            Err(RecordError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let from = if index == cursor.index { cursor.offset } else { 0 };
        let from = usize::try_from(from).unwrap_or(usize::MAX).min(piece.len());
        text.extend_from_slice(&piece[from..]);
        // The last piece may still grow: read on from its end.
        cursor = if index == last {
            LogCursor {
                index,
                offset: piece.len() as u64,
            }
        } else {
            LogCursor {
                index: index + 1,
                offset: 0,
            }
        };
    }
    Ok((text, cursor))
}
