//! A stage's log stored in pieces while it runs (`aphex_stages::log_upload`)
//! and read back as `aphex logs` reads it: whole, in order, stored before
//! the stage ends, its tail kept under the cap with a note, and output that
//! comes faster than the store replaced by a note.

use std::sync::Arc;
use std::time::Duration;

use aphex_stages::local::DirRunRecorder;
use aphex_stages::log_upload::{Limits, LogCursor, LogTarget, LogUpload, read_since};
use aphex_stages::ports::RunRecorder;
use aphex_stages::report::{CollectingReporter, Event, Reporter};
use proptest::prelude::*;

const EVERY: Duration = Duration::from_millis(50);

fn info(message: String) -> Event {
    Event::Info {
        stage: "build".to_owned(),
        message,
    }
}

/// An upload of stage `build` of run `r1` into `runs`.
fn upload(runs: &Arc<DirRunRecorder>, limits: Limits) -> Arc<LogUpload> {
    LogUpload::start(
        LogTarget {
            runs: runs.clone(),
            pipeline: "shop".to_owned(),
            id: "r1".to_owned(),
            stage: "build".to_owned(),
        },
        Arc::new(CollectingReporter::default()),
        limits,
    )
}

/// The stored log of `build`, as a reader from the start sees it.
async fn stored(runs: &DirRunRecorder) -> String {
    let chunks = runs.log_chunks("shop", "r1").await.unwrap();
    let (text, _) = read_since(runs, "shop", "r1", "build", &chunks, LogCursor::default())
        .await
        .unwrap();
    String::from_utf8(text).unwrap()
}

/// `[build] line N` for each N, newline-terminated.
fn lines(range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("[build] line {i}\n")).collect()
}

#[tokio::test(start_paused = true)]
async fn the_log_is_stored_while_the_stage_runs_and_whole_when_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let runs = Arc::new(DirRunRecorder::new(dir.path()));
    let limits = Limits {
        piece_bytes: 64,
        every: EVERY,
        ..Limits::default()
    };
    let up = upload(&runs, limits);
    for i in 0..3 {
        up.event(&info(format!("line {i}")));
    }
    // Nothing is stored before a tick; after one, what was said so far is.
    assert_eq!(stored(&runs).await, "");
    tokio::time::sleep(EVERY * 2).await;
    assert_eq!(stored(&runs).await, lines(0..3));

    // A follower reads on from where it stopped, across pieces.
    let chunks = runs.log_chunks("shop", "r1").await.unwrap();
    let (_, cursor) = read_since(&*runs, "shop", "r1", "build", &chunks, LogCursor::default())
        .await
        .unwrap();
    for i in 3..40 {
        up.event(&info(format!("line {i}")));
    }
    up.finish().await.unwrap();
    let chunks = runs.log_chunks("shop", "r1").await.unwrap();
    assert!(chunks.len() > 5, "64-byte pieces: {chunks:?}");
    assert!(chunks.iter().all(|c| c.bytes <= 64), "{chunks:?}");
    let (more, _) = read_since(&*runs, "shop", "r1", "build", &chunks, cursor)
        .await
        .unwrap();
    assert_eq!(String::from_utf8(more).unwrap(), lines(3..40));
    assert_eq!(stored(&runs).await, lines(0..40));
}

#[tokio::test(start_paused = true)]
async fn a_log_over_its_cap_keeps_its_tail_behind_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let runs = Arc::new(DirRunRecorder::new(dir.path()));
    let limits = Limits {
        piece_bytes: 100,
        log_cap: 400,
        every: EVERY,
        ..Limits::default()
    };
    let up = upload(&runs, limits);
    for i in 0..200 {
        up.event(&info(format!("line {i}")));
        if i % 10 == 0 {
            tokio::time::sleep(EVERY).await;
        }
    }
    up.finish().await.unwrap();
    let chunks = runs.log_chunks("shop", "r1").await.unwrap();
    let total: u64 = chunks.iter().map(|c| c.bytes).sum();
    assert!(total <= 400, "{total} bytes kept: {chunks:?}");
    let text = stored(&runs).await;
    let (note, tail) = text.split_once('\n').unwrap();
    let first = chunks[0].index;
    assert!(first > 0);
    assert_eq!(
        Some(format!("{note}\n")),
        aphex_stages::log_upload::cut_note(first)
    );
    assert!(
        note.starts_with(&format!("[aphex: the first {first} piece")),
        "{note}"
    );
    // Whole lines, the last ones, up to the very last.
    let all = lines(0..200);
    assert!(all.ends_with(tail) && tail.ends_with("line 199\n"), "{tail}");
    assert!(all.contains(&format!("\n{tail}")), "the tail starts at a line");
}

#[tokio::test(start_paused = true)]
async fn output_faster_than_the_store_is_dropped_with_a_note_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let runs = Arc::new(DirRunRecorder::new(dir.path()));
    let limits = Limits {
        pending_cap: 1000,
        every: EVERY,
        ..Limits::default()
    };
    let up = upload(&runs, limits);
    // The store gets no turn while these arrive (one thread, no await).
    for i in 0..500 {
        up.event(&info(format!("line {i}")));
    }
    up.event(&info("the end".to_owned()));
    tokio::time::sleep(EVERY * 2).await;
    up.event(&info("after".to_owned()));
    up.finish().await.unwrap();
    let text = stored(&runs).await;
    assert!(text.starts_with("[build] line 0\n"), "{text}");
    let kept = lines(0..500);
    let cut = text.find("[aphex: ").expect("a note where output was dropped");
    assert!(kept.starts_with(&text[..cut]), "what was kept is the start");
    assert!(cut <= 1000, "at most the pending cap before the note: {cut}");
    let (note, rest) = text[cut..].split_once('\n').unwrap();
    assert!(
        note.contains("bytes of output were dropped here: they came faster than the log could be stored"),
        "{note}"
    );
    assert_eq!(
        rest, "[build] after\n",
        "output after the store caught up is kept"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    // Property: whatever the lines and limits, the stored log read from the
    // start is the whole output when it fits under the cap, and otherwise a
    // note followed by a tail of whole lines ending with the last one, with
    // no more than the cap stored.
    #[test]
    fn the_stored_log_is_the_output_or_its_tail(
        sizes in prop::collection::vec(0usize..90, 1..120),
        // Every line fits in a piece, so only whole pieces are ever dropped.
        piece_bytes in 110usize..300,
        pieces_kept in 1u64..8,
        ticks in prop::collection::vec(any::<bool>(), 120),
    ) {
        let log_cap = piece_bytes as u64 * pieces_kept + 1;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let runs = Arc::new(DirRunRecorder::new(dir.path()));
        let all: String = sizes.iter().enumerate().map(|(i, n)| format!("[build] {i}:{}\n", "x".repeat(*n))).collect();
        let (text, total) = rt.block_on(async {
            let up = upload(&runs, Limits { piece_bytes, log_cap, every: EVERY, ..Limits::default() });
            for (i, n) in sizes.iter().enumerate() {
                up.event(&info(format!("{i}:{}", "x".repeat(*n))));
                if ticks[i] {
                    tokio::time::sleep(EVERY).await;
                }
            }
            up.finish().await.unwrap();
            let total: u64 = runs.log_chunks("shop", "r1").await.unwrap().iter().map(|c| c.bytes).sum();
            (stored(&runs).await, total)
        });
        prop_assert!(total <= log_cap, "{} > {}", total, log_cap);
        if all.len() as u64 <= log_cap {
            prop_assert_eq!(text, all);
        } else {
            let (note, tail) = text.split_once('\n').unwrap();
            prop_assert!(note.starts_with("[aphex: the first "), "{}", note);
            prop_assert!(all.len() > tail.len() && all.ends_with(tail));
            prop_assert_eq!(all.as_bytes()[all.len() - tail.len() - 1], b'\n', "the tail starts at a line");
            let last = format!("[build] {}:{}\n", sizes.len() - 1, "x".repeat(*sizes.last().unwrap()));
            prop_assert!(tail.ends_with(&last));
        }
    }
}
