//! `cargo xtask bench`, output part: the peak memory of a build whose
//! commands print without end, in both places output is handled. The
//! release `aphex-runner build` (a pod: the local adapters with
//! `--state-dir`, the fake deployer, output to a pipe read as fast as the
//! bench can) and the release `aphex run --local --deployer fake` (a
//! laptop: output to the terminal stream and the stage's stored log, which
//! is capped). Three builds: a quiet one (the baseline), one printing a
//! single 100 MB line, and one printing 2 million short lines. Target: the
//! process under 64 MiB peak resident memory (issue 16). Figures go in
//! docs/benchmarks.md.
//!
//! Memory is the process's own `VmHWM` (`crate::bench_deploy::vm_hwm`),
//! sampled while it runs: its children (bash, `seq`, git) are not counted.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench_deploy::vm_hwm;

/// What each build prints.
const BUILDS: [(&str, &str); 3] = [
    ("quiet build (baseline)", "echo built"),
    (
        "one 100 MB line",
        "head -c 100000000 /dev/zero | tr '\\0' x; echo",
    ),
    ("2 million short lines", "seq 1 2000000"),
];

/// The peak memory target, KiB.
const TARGET_KIB: u64 = 64 * 1024;

/// One measured process.
struct Measure {
    wall: Duration,
    peak_kib: u64,
    /// Bytes the process wrote to stdout and stderr.
    printed: u64,
}

/// Runs the output benchmark.
pub fn run() -> Result<()> {
    let root = crate::root();
    crate::cargo(&[
        "build",
        "--release",
        "--quiet",
        "--package",
        "aphex-cli",
        "--package",
        "aphex-runner",
    ])?;
    let bin = crate::demo::target_dir(&root).join("release");
    let dir = std::env::temp_dir().join(format!("aphex-bench-output-{}", std::process::id()));
    let result = measure_all(&bin, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure_all(bin: &Path, dir: &Path) -> Result<()> {
    println!(
        "runaway output (peak resident memory of the process itself; target 64 MiB for the runner, \
         the pod's process; `aphex run --local`, all stages in one process on a laptop, for comparison):"
    );
    let mut over = Vec::new();
    for (i, (what, command)) in BUILDS.iter().enumerate() {
        let repo = dir.join(format!("app-{i}"));
        let sha = app_repo(&repo, command)?;
        let runner = runner_build(bin, dir, &repo, &sha, i)?;
        let (local, log_bytes) = run_local(bin, &repo)?;
        for (who, m, targeted) in [
            ("aphex-runner build", &runner, true),
            ("aphex run --local", &local, false),
        ] {
            let mark = match (targeted, m.peak_kib < TARGET_KIB) {
                (_, true) => "",
                (true, false) => "  OVER TARGET",
                (false, false) => "  (over 64 MiB)",
            };
            println!(
                "  {what:<24} {who:<18} peak RSS {:>5.1} MiB, {:>5.1} s, {:>6.1} MiB printed{mark}",
                m.peak_kib as f64 / 1024.0,
                m.wall.as_secs_f64(),
                m.printed as f64 / (1024.0 * 1024.0),
            );
            if targeted && m.peak_kib >= TARGET_KIB {
                over.push(format!("{who} on the {what}"));
            }
        }
        println!(
            "  {what:<24} {:<18} stored build log {:.1} MiB",
            "",
            log_bytes as f64 / (1024.0 * 1024.0)
        );
    }
    if !over.is_empty() {
        bail!("over the 64 MiB target: {}", over.join(", "));
    }
    Ok(())
}

/// A git repository at `repo` whose build runs `command`, with one
/// environment the fake deployer can deploy; returns its commit.
fn app_repo(repo: &Path, command: &str) -> Result<String> {
    std::fs::create_dir_all(repo.join("lib")).with_context(|| format!("creating {}", repo.display()))?;
    std::fs::create_dir_all(repo.join("fake-cdk-out"))?;
    let quoted = command.replace('\\', "\\\\").replace('"', "\\\"");
    std::fs::write(
        repo.join("aphex-config.yaml"),
        format!(
            "version: \"1.0\"\nbuild:\n  commands:\n    - \"{quoted}\"\nenvironments:\n  - name: dev\n    region: us-east-1\n    account: \"123456789012\"\n    synth: cp -r fake-cdk-out/. \"$CDK_OUTDIR\"/\n    stacks:\n      - {{ name: AppStack, path: lib/app.ts }}\n"
        ),
    )?;
    std::fs::write(repo.join("lib/app.ts"), "// the app stack\n")?;
    std::fs::write(
        repo.join("fake-cdk-out/manifest.json"),
        r#"{"version": "55.0.0", "artifacts": {"AppStack": {"type": "aws:cloudformation:stack",
            "environment": "aws://unknown-account/unknown-region",
            "properties": {"templateFile": "AppStack.template.json"}, "displayName": "AppStack"}}}"#,
    )?;
    std::fs::write(
        repo.join("fake-cdk-out/AppStack.template.json"),
        r#"{"Resources": {}}"#,
    )?;
    crate::bench_deploy::git(repo, &["init", "-q", "-b", "main"])?;
    crate::bench_deploy::git(repo, &["add", "-A"])?;
    crate::bench_deploy::git(repo, &["commit", "-q", "-m", "bench"])?;
    crate::bench_deploy::git(repo, &["rev-parse", "HEAD"])
}

/// `aphex-runner build` of `repo` at `sha`, as in a pod.
fn runner_build(bin: &Path, dir: &Path, repo: &Path, sha: &str, i: usize) -> Result<Measure> {
    let mut cmd = Command::new(bin.join("aphex-runner"));
    cmd.args(["build", "--commit-sha", sha, "--deployer", "fake"])
        .args(["--workflow-id", &format!("bench-output-{i}")])
        .arg("--repo-url")
        .arg(repo)
        // The branch the commit must be on, as the WorkflowTemplate passes it.
        .args(["--branch", "main"])
        .arg("--work-dir")
        .arg(dir.join(format!("work-{i}")))
        .arg("--outputs-dir")
        .arg(dir.join(format!("outputs-{i}")))
        .arg("--state-dir")
        .arg(dir.join(format!("state-{i}")));
    measure(cmd, "aphex-runner build")
}

/// `aphex run --local --deployer fake` in `repo`; also the size of the
/// build's stored log.
fn run_local(bin: &Path, repo: &Path) -> Result<(Measure, u64)> {
    let mut cmd = Command::new(bin.join("aphex"));
    cmd.args(["run", "--local", "--deployer", "fake", "--yes"])
        .current_dir(repo);
    let m = measure(cmd, "aphex run --local")?;
    let runs = repo.join(".aphex/runs");
    let log = walk_find(&runs, "build.log").context("finding the build's stored log")?;
    let bytes = std::fs::metadata(&log)?.len();
    Ok((m, bytes))
}

fn walk_find(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
        if path.is_dir()
            && let Some(found) = walk_find(&path, name)
        {
            return Some(found);
        }
    }
    None
}

/// Runs `cmd` to completion, draining its output, sampling its `VmHWM`.
fn measure(mut cmd: Command, what: &str) -> Result<Measure> {
    cmd.env("APHEX_LOG", "info")
        .env_remove(aphex_template::workflow::SLACK_WEBHOOK_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("running {what}"))?;
    let pid = child.id();
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            // Read as fast as a log collector would; keep only the end for errors.
            let mut buf = vec![0u8; 64 * 1024];
            let mut total = 0u64;
            let mut last = Vec::new();
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                total += n as u64;
                last = buf[..n].to_vec();
            }
            (total, String::from_utf8_lossy(&last).into_owned())
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped")));
    let err = drain(Box::new(child.stderr.take().expect("piped")));
    let mut peak_kib = 0;
    let status = loop {
        if let Some(status) = child.try_wait().with_context(|| format!("waiting for {what}"))? {
            break status;
        }
        if let Some(kib) = vm_hwm(pid) {
            peak_kib = peak_kib.max(kib);
        }
        // Sampling memory, not timing: VmHWM is a high-water mark, so only
        // the last interval before exit can be missed.
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = start.elapsed();
    let (out_bytes, out_tail) = out.join().unwrap_or_default();
    let (err_bytes, err_tail) = err.join().unwrap_or_default();
    if !status.success() {
        bail!("{what} failed ({status}); the end of its output:\n{out_tail}\n{err_tail}");
    }
    Ok(Measure {
        wall,
        peak_kib,
        printed: out_bytes + err_bytes,
    })
}
