//! `cargo xtask bench`, rendering part: renders the generated 100
//! environments x 50 stacks configuration in-process, then times the whole
//! `aphex render` process on it (budget: a median of at most 25 ms).
//! Figures go in docs/benchmarks.md.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::{ENVIRONMENTS, STACKS, generate};

fn median_and_best(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    (
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
    )
}

/// Runs the rendering benchmark (called from the release build of `bench`).
pub fn run() -> Result<()> {
    let source = generate(ENVIRONMENTS, STACKS);
    let config = match aphex_config::load_str("bench.yaml", &source) {
        Ok(c) => c,
        Err(d) => bail!("the generated configuration is invalid: {:?}", d.first()),
    };
    let options = aphex_template::RenderOptions::default();
    let size = {
        let r = aphex_template::render(&config, &options);
        r.files()?.iter().map(|(_, c)| c.len()).sum::<usize>()
    };
    let times = (0..30)
        .map(|_| {
            let start = Instant::now();
            let r = aphex_template::render(&config, &options);
            let files = r.files().expect("rendered once already");
            std::hint::black_box(files);
            start.elapsed()
        })
        .collect();
    let (median, best) = median_and_best(times);
    println!(
        "render {ENVIRONMENTS} environments x {STACKS} stacks ({} KiB of manifests and stack template): median {median:.2} ms, best {best:.2} ms (30 runs, in process)",
        size / 1024
    );

    // The whole `aphex render` process: start-up, reading, validating, rendering, writing.
    crate::cargo(&["build", "--release", "--quiet", "--package", "aphex-cli"])?;
    let root = crate::root();
    // Where the build above wrote it (`CARGO_TARGET_DIR` included).
    let aphex = crate::demo::target_dir(&root).join("release/aphex");
    let dir = std::env::temp_dir().join(format!("aphex-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let config_path = dir.join("aphex-config.yaml");
    std::fs::write(&config_path, &source).with_context(|| format!("writing {}", config_path.display()))?;
    let result = time_process(&aphex, &config_path);
    let _ = std::fs::remove_dir_all(&dir);
    let (median, best) = result?;
    println!(
        "aphex render {ENVIRONMENTS} x {STACKS} (whole process, output to /dev/null): median {median:.2} ms, best {best:.2} ms (30 runs)"
    );
    Ok(())
}

fn time_process(aphex: &Path, config: &Path) -> Result<(f64, f64)> {
    let mut times = Vec::new();
    for _ in 0..31 {
        let start = Instant::now();
        let status = Command::new(aphex)
            .arg("render")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("running {}", aphex.display()))?;
        let t = start.elapsed();
        if !status.success() {
            bail!("{} render failed ({status})", aphex.display());
        }
        times.push(t);
    }
    // The first run pays for the page cache.
    times.remove(0);
    Ok(median_and_best(times))
}
