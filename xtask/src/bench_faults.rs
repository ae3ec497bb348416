//! `cargo xtask bench`, faults part: the release `aphex run --local --yes
//! --store s3://...` of the quick start (the pipeline's own stack, then
//! dev and prod, three stacks each, their tests, the record in S3 and the
//! metrics in CloudWatch) against the local AWS emulator through the fault
//! proxy of `aphex-testkit`, with 0 % and with 15 % of requests faulted
//! (throttling, bare 5xx, connections closed before and after the emulator
//! answered, answers held back 3 s). Reports each run's wall time, the
//! medians and their ratio. Figures go in docs/benchmarks.md.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aphex_testkit::fault_proxy::{FaultProxy, Outcome, RandomFaults};

use crate::bench_deploy::{copy_tree, git};
use crate::demo::{aws, aws_env, bootstrap, prepare_cluster, target_dir};
use crate::emulator::Emulator;

/// The account the pipeline's own stack and its cluster's exports live in
/// (the emulator's default credentials).
const HOME: &str = "000000000000";

/// The share of requests faulted in the faulty runs.
const SHARE: f64 = 0.15;

/// Timed runs per share (after one untimed warm-up run).
const RUNS: usize = 3;

/// The store bucket (artifacts and run records).
const BUCKET: &str = "aphex-bench-faults";

/// What one run did.
struct Measure {
    wall: Duration,
    requests: usize,
    faulted: usize,
}

/// Runs the faults benchmark.
pub fn run() -> Result<()> {
    let root = crate::root();
    // The emulator boots while the packages install and the binary builds;
    // dropping `emulator` stops it, whatever happens below.
    let mut emulator = Emulator::spawn().context("starting the local AWS emulator")?;
    crate::npm::ensure(&root)?;
    crate::cargo(&["build", "--release", "--quiet", "--package", "aphex-cli"])?;
    emulator
        .wait_healthy()
        .context("starting the local AWS emulator")?;
    bootstrap(&emulator, HOME)?;
    aws(&emulator, HOME, &["s3api", "create-bucket", "--bucket", BUCKET])
        .with_context(|| format!("creating the bench's store bucket {BUCKET}"))?;
    let (_, cluster) = crate::demo::quickstart_config(&root)?;
    prepare_cluster(&emulator, HOME, &cluster)?;
    let proxy = FaultProxy::start(&emulator.endpoint()).context("starting the fault proxy")?;
    let aphex = target_dir(&root).join("release/aphex");
    let dir = std::env::temp_dir().join(format!("aphex-bench-faults-{}", std::process::id()));
    let result = measure_all(&root, &aphex, &emulator, &proxy, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure_all(root: &Path, aphex: &Path, emulator: &Emulator, proxy: &FaultProxy, dir: &Path) -> Result<()> {
    // The first deploys on a fresh emulator load its providers: not measured.
    let warm = run_once(root, aphex, emulator, proxy, dir, 0, 0.0)?;
    println!(
        "quick start through the fault proxy, warm-up (0 %, not counted): {:.1} s",
        warm.wall.as_secs_f64()
    );
    let mut clean = Vec::new();
    let mut faulty = Vec::new();
    // Alternated, so a change in the machine's load hits both alike; each
    // faulty run draws its faults from a seed of its own.
    for i in 1..=RUNS {
        for share in [0.0, SHARE] {
            let m = run_once(root, aphex, emulator, proxy, dir, i, share)?;
            println!(
                "quick start, {:.0} % faults: {:.1} s, {} requests, {} faulted",
                share * 100.0,
                m.wall.as_secs_f64(),
                m.requests,
                m.faulted
            );
            if share == 0.0 {
                clean.push(m.wall);
            } else {
                faulty.push(m.wall);
            }
        }
    }
    let (c, f) = (median(&mut clean), median(&mut faulty));
    println!(
        "quick start deploy ({RUNS} runs each, median): 0 % faults {c:.1} s, {:.0} % faults {f:.1} s, ratio {:.2}x",
        SHARE * 100.0,
        f / c
    );
    Ok(())
}

fn median(times: &mut [Duration]) -> f64 {
    times.sort();
    times[(times.len() - 1) / 2].as_secs_f64()
}

/// One `aphex run --local` of a fresh copy of the quick start, in accounts
/// of its own (so every stack is created), through the proxy faulting
/// `share` of the requests.
fn run_once(
    root: &Path,
    aphex: &Path,
    emulator: &Emulator,
    proxy: &FaultProxy,
    dir: &Path,
    index: usize,
    share: f64,
) -> Result<Measure> {
    let tag = format!("{index}-{}", (share * 100.0) as u32);
    let accounts = [account(index, share, 0), account(index, share, 1)];
    for account in &accounts {
        bootstrap(emulator, account)?;
    }
    let repo = dir.join(format!("quickstart-{tag}"));
    app_repo(root, &repo, &format!("bench-{tag}"), &accounts)?;
    proxy.set_random((share > 0.0).then(|| RandomFaults::new(share, index as u64)));
    let before = proxy.exchanges().len();
    let mut cmd = Command::new(aphex);
    aws_env(&mut cmd, emulator)
        .args(["run", "--local", "--yes", "--store", &format!("s3://{BUCKET}")])
        .env("AWS_ENDPOINT_URL", proxy.endpoint())
        .current_dir(&repo)
        .envs(crate::npm::node_env(root))
        .stdin(Stdio::null());
    let start = Instant::now();
    let output = cmd
        .output()
        .with_context(|| format!("running {}", aphex.display()))?;
    let wall = start.elapsed();
    proxy.set_random(None);
    if !output.status.success() {
        bail!(
            "aphex run --local ({tag}) failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let exchanges = &proxy.exchanges()[before..];
    let faulted = exchanges
        .iter()
        .filter(|e| matches!(e.outcome, Outcome::Faulted(..)))
        .count();
    Ok(Measure {
        wall,
        requests: exchanges.len(),
        faulted,
    })
}

/// A 12-digit account of run `index`'s environment `env`: new for every
/// run, so each one creates its stacks.
fn account(index: usize, share: f64, env: usize) -> String {
    let faulty = usize::from(share > 0.0);
    format!(
        "7{:05}{:04}{}{}",
        std::process::id() % 100_000,
        index,
        faulty,
        env
    )
}

/// The quick start as a fresh git repository at `repo`: pipeline
/// `pipeline`, dev and prod in `accounts`.
fn app_repo(root: &Path, repo: &Path, pipeline: &str, accounts: &[String; 2]) -> Result<()> {
    copy_tree(&root.join(crate::npm::QUICKSTART), repo)?;
    let file = repo.join("aphex-config.yaml");
    let config = std::fs::read_to_string(&file).context("reading the quick start's config")?;
    let name = "\n  name: quickstart\n";
    if !config.contains(name) || !config.contains("111111111111") {
        bail!(
            "examples/quickstart/aphex-config.yaml changed: no `{}` or account 111111111111 to adjust",
            name.trim()
        );
    }
    let config = config
        .replace("000000000000", &accounts[0])
        .replace("111111111111", &accounts[1])
        .replace(name, &format!("\n  name: {pipeline}\n"));
    std::fs::write(&file, config).context("writing the bench app's config")?;
    git(repo, &["init", "-q", "-b", "main"])?;
    git(repo, &["add", "-A"])?;
    git(repo, &["commit", "-q", "-m", "bench"])?;
    Ok(())
}
