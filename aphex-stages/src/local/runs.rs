//! The directory run recorder: one JSON document per run at
//! `<root>/<pipeline>/<run-id>.json` (the run object, replaced atomically by
//! `finalize` and the local executor), and one per stage at
//! `<root>/<pipeline>/<run-id>/stages/<stage>.json` (the stage objects each
//! stage writes for itself, so stages finishing together lose nothing).
//! Stage logs are kept in pieces at
//! `<root>/<pipeline>/<run-id>/logs/<stage>/<index>.log`.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::write_atomic;
use crate::ports::{LogChunk, RecordError, RunListing, RunRecorder};
use crate::record::{self, RunRecord, StageRecord};

/// Run records in a directory.
#[derive(Debug, Clone)]
pub struct DirRunRecorder {
    root: PathBuf,
}

impl DirRunRecorder {
    /// A recorder rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirRunRecorder { root: root.into() }
    }

    /// The file of run `id` (its run object).
    pub fn path_of(&self, pipeline: &str, id: &str) -> PathBuf {
        self.root.join(pipeline).join(format!("{id}.json"))
    }

    /// The folder of run `id`'s stage objects.
    pub(crate) fn stages_dir(&self, pipeline: &str, id: &str) -> PathBuf {
        self.root.join(pipeline).join(id).join("stages")
    }

    /// The folder of `stage`'s log pieces in run `id`.
    pub(crate) fn log_dir(&self, pipeline: &str, id: &str, stage: &str) -> PathBuf {
        self.root.join(pipeline).join(id).join("logs").join(stage)
    }

    fn log_piece(&self, pipeline: &str, id: &str, stage: &str, index: u64) -> Result<PathBuf, RecordError> {
        record::check_segment("run id", id)?;
        record::check_segment("stage name", stage)?;
        Ok(self.log_dir(pipeline, id, stage).join(format!("{index:08}.log")))
    }

    /// The run object of `id`, if written.
    fn read_run(&self, pipeline: &str, id: &str) -> Result<Option<RunRecord>, RecordError> {
        let path = self.path_of(pipeline, id);
        match std::fs::read(&path) {
            Ok(b) => parse(&path, &b).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RecordError::io(format!("reading {}", path.display()))(e)),
        }
    }

    /// The stage objects of `id` (none when its folder does not exist).
    fn read_stages(&self, pipeline: &str, id: &str) -> Result<Vec<RunRecord>, RecordError> {
        let dir = self.stages_dir(pipeline, id);
        json_files(&dir)?
            .iter()
            .map(|path| {
                let bytes =
                    std::fs::read(path).map_err(RecordError::io(format!("reading {}", path.display())))?;
                parse(path, &bytes)
            })
            .collect()
    }

    fn load_sync(&self, pipeline: &str, id: &str) -> Result<Option<RunRecord>, RecordError> {
        let run = self.read_run(pipeline, id)?;
        Ok(record::merge_stage_objects(run, self.read_stages(pipeline, id)?))
    }
}

/// The `*.json` files directly in `dir` (none when it does not exist); temp
/// files of writes in progress have no such extension.
fn json_files(dir: &Path) -> Result<Vec<PathBuf>, RecordError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RecordError::io(format!("listing {}", dir.display()))(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(RecordError::io(format!("listing {}", dir.display())))?
            .path();
        if path.extension().is_some_and(|e| e == "json") && path.is_file() {
            files.push(path);
        }
    }
    Ok(files)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<RunRecord, RecordError> {
    serde_json::from_slice(bytes).map_err(|source| RecordError::Json {
        context: format!("parsing run record {}", path.display()),
        source,
    })
}

#[async_trait]
impl RunRecorder for DirRunRecorder {
    async fn record(&self, run: &RunRecord) -> Result<(), RecordError> {
        record::check_segment("run id", &run.id)?;
        let bytes = serde_json::to_vec_pretty(run).expect("run record serializes");
        write_atomic(&self.path_of(&run.pipeline, &run.id), &bytes, RecordError::io)
    }

    async fn record_stage(&self, header: &RunRecord, stage: &StageRecord) -> Result<(), RecordError> {
        record::check_segment("run id", &header.id)?;
        record::check_segment("stage name", &stage.name)?;
        let object = RunRecord::stage_object(header, stage);
        let bytes = serde_json::to_vec_pretty(&object).expect("run record serializes");
        let path = self
            .stages_dir(&header.pipeline, &header.id)
            .join(format!("{}.json", stage.name));
        write_atomic(&path, &bytes, RecordError::io)
    }

    async fn load(&self, pipeline: &str, id: &str) -> Result<Option<RunRecord>, RecordError> {
        self.load_sync(pipeline, id)
    }

    async fn scan(&self, pipeline: &str, limit: usize) -> Result<RunListing, RecordError> {
        let dir = self.root.join(pipeline);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RunListing::default()),
            Err(e) => return Err(RecordError::io(format!("listing {}", dir.display()))(e)),
        };
        // A run is `<id>.json`, or a `<id>/stages/` folder with stage objects
        // and no run object yet. A run folder may also hold the local
        // executor's logs and outputs, which are not runs.
        let mut ids = std::collections::BTreeSet::new();
        for entry in entries {
            let path = entry
                .map_err(RecordError::io(format!("listing {}", dir.display())))?
                .path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Some(id) = name.strip_suffix(".json").filter(|_| path.is_file()) {
                ids.insert(id.to_owned());
            } else if path.is_dir() && !json_files(&path.join("stages"))?.is_empty() {
                ids.insert(name.to_owned());
            }
        }
        let loaded = ids.into_iter().map(|id| {
            let run = self.load_sync(pipeline, &id);
            (id, run)
        });
        Ok(RunListing::collect(loaded, limit))
    }

    async fn put_log_chunk(
        &self,
        pipeline: &str,
        id: &str,
        stage: &str,
        index: u64,
        text: &[u8],
    ) -> Result<(), RecordError> {
        write_atomic(
            &self.log_piece(pipeline, id, stage, index)?,
            text,
            RecordError::io,
        )
    }

    async fn remove_log_chunk(
        &self,
        pipeline: &str,
        id: &str,
        stage: &str,
        index: u64,
    ) -> Result<(), RecordError> {
        let path = self.log_piece(pipeline, id, stage, index)?;
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(RecordError::io(format!("removing {}", path.display()))(e))
            }
            _ => Ok(()),
        }
    }

    async fn log_chunks(&self, pipeline: &str, id: &str) -> Result<Vec<LogChunk>, RecordError> {
        record::check_segment("run id", id)?;
        let logs = self.root.join(pipeline).join(id).join("logs");
        let mut chunks = Vec::new();
        for stage_dir in dirs(&logs)? {
            let Some(stage) = stage_dir.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let entries = std::fs::read_dir(&stage_dir)
                .map_err(RecordError::io(format!("listing {}", stage_dir.display())))?;
            for entry in entries {
                let entry = entry.map_err(RecordError::io(format!("listing {}", stage_dir.display())))?;
                let name = entry.file_name();
                // Temp files of writes in progress have other names.
                let Some(index) = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".log"))
                    .and_then(|n| n.parse::<u64>().ok())
                else {
                    continue;
                };
                let bytes = entry
                    .metadata()
                    .map_err(RecordError::io(format!("reading {}", entry.path().display())))?
                    .len();
                chunks.push(LogChunk {
                    stage: stage.to_owned(),
                    index,
                    bytes,
                });
            }
        }
        chunks.sort_by(|a, b| (&a.stage, a.index).cmp(&(&b.stage, b.index)));
        Ok(chunks)
    }

    async fn log_chunk(
        &self,
        pipeline: &str,
        id: &str,
        stage: &str,
        index: u64,
    ) -> Result<Vec<u8>, RecordError> {
        let path = self.log_piece(pipeline, id, stage, index)?;
        std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => RecordError::NotFound {
                what: path.display().to_string(),
            },
            _ => RecordError::io(format!("reading {}", path.display()))(e),
        })
    }
}

/// The folders directly in `dir` (none when it does not exist).
fn dirs(dir: &Path) -> Result<Vec<PathBuf>, RecordError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RecordError::io(format!("listing {}", dir.display()))(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(RecordError::io(format!("listing {}", dir.display())))?
            .path();
        if path.is_dir() {
            found.push(path);
        }
    }
    Ok(found)
}
