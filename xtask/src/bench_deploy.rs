//! `cargo xtask bench`, deploy part: the release `aphex-runner deploy`
//! against the local AWS emulator on `tests/cdk-apps`' `parallel` variant
//! (six independent stacks), with `concurrency` 1 and then 3. Reports the
//! wall time of the whole deploy stage (checkout, synth, deploys, outputs),
//! of its stack phase alone, their 1-vs-3 ratios, and the runner's own peak
//! resident memory (target: under 64 MiB) with its children's (node, git)
//! noted apart. Figures go in docs/benchmarks.md.
//!
//! Memory is read from `/proc/<pid>/status` (`VmHWM`, the kernel's
//! high-water mark of the process's resident set) while the process runs:
//! `wait4`'s `ru_maxrss` would be the largest of the runner and its waited-for
//! children, that is node's synth.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::demo::{aws, aws_env, bootstrap, target_dir};
use crate::emulator::Emulator;

/// The variant's account (`tests/cdk-apps/configs/parallel.yaml`).
const ACCOUNT: &str = "000000000000";

/// The run-record and artifact bucket the runner uses (S3 store, as in a pod).
const BUCKET: &str = "aphex-bench-artifacts";

/// Timed runs per concurrency (after one untimed warm-up run).
const RUNS: usize = 3;

/// What one `aphex-runner deploy` did.
#[derive(Debug)]
struct Measure {
    /// The whole process.
    wall: Duration,
    /// From the "deploying e2e with ..." line to "stack outputs written".
    stacks: Duration,
    /// Each stack's own deploy time in seconds, as the runner logged it.
    per_stack: Vec<f64>,
    /// The runner's own `VmHWM`, KiB.
    own_kib: u64,
    /// Each descendant command's largest `VmHWM` seen, KiB.
    children_kib: BTreeMap<String, u64>,
}

/// Runs the deploy benchmark.
pub fn run() -> Result<()> {
    let root = crate::root();
    // The emulator boots while the packages install and the binaries build;
    // dropping `emulator` stops it, whatever happens below.
    let mut emulator = Emulator::spawn().context("starting the local AWS emulator")?;
    crate::npm::ensure(&root)?;
    crate::cargo(&[
        "build",
        "--release",
        "--quiet",
        "--package",
        "aphex-cli",
        "--package",
        "aphex-runner",
    ])?;
    emulator
        .wait_healthy()
        .context("starting the local AWS emulator")?;
    bootstrap(&emulator, ACCOUNT)?;
    aws(
        &emulator,
        ACCOUNT,
        &["s3api", "create-bucket", "--bucket", BUCKET],
    )
    .with_context(|| format!("creating the bench's artifact bucket {BUCKET}"))?;
    let runner = target_dir(&root).join("release/aphex-runner");
    let dir = std::env::temp_dir().join(format!("aphex-bench-deploy-{}", std::process::id()));
    let result = measure_all(&root, &runner, &emulator, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure_all(root: &Path, runner: &Path, emulator: &Emulator, dir: &Path) -> Result<()> {
    println!("machine: {}", machine());
    // The first deploys on a fresh emulator load its CloudFormation, SSM and
    // SQS providers: not what is being measured.
    let warm = deploy_once(root, runner, emulator, dir, 3, "warm")?;
    println!(
        "warm-up (concurrency 3, not counted): {:.1} s",
        warm.wall.as_secs_f64()
    );
    let mut by: BTreeMap<u32, Vec<Measure>> = BTreeMap::new();
    // Alternated, so a change in the machine's load hits both alike.
    for i in 0..RUNS {
        for concurrency in [1, 3] {
            let m = deploy_once(root, runner, emulator, dir, concurrency, &format!("r{i}"))?;
            println!(
                "concurrency {concurrency}: stage {:.1} s, stacks {:.1} s, runner peak RSS {:.1} MiB",
                m.wall.as_secs_f64(),
                m.stacks.as_secs_f64(),
                m.own_kib as f64 / 1024.0
            );
            by.entry(concurrency).or_default().push(m);
        }
    }
    let median = |c: u32, f: fn(&Measure) -> Duration| -> f64 {
        let mut v: Vec<f64> = by[&c].iter().map(|m| f(m).as_secs_f64()).collect();
        v.sort_by(f64::total_cmp);
        v[(v.len() - 1) / 2]
    };
    let (s1, s3) = (median(1, |m| m.wall), median(3, |m| m.wall));
    let (k1, k3) = (median(1, |m| m.stacks), median(3, |m| m.stacks));
    println!(
        "deploy stage, 6 independent stacks ({RUNS} runs each, median): concurrency 1 {s1:.1} s, concurrency 3 {s3:.1} s, ratio {:.2}x",
        s1 / s3
    );
    println!(
        "  of which the stack phase (after synth): concurrency 1 {k1:.1} s, concurrency 3 {k3:.1} s, ratio {:.2}x",
        k1 / k3
    );
    for c in [1, 3] {
        let times: Vec<f64> = by[&c].iter().flat_map(|m| m.per_stack.iter().copied()).collect();
        println!(
            "  one stack's deploy with concurrency {c}: mean {:.2} s ({} stacks)",
            times.iter().sum::<f64>() / times.len() as f64,
            times.len()
        );
    }
    for c in [1, 3] {
        let own = by[&c].iter().map(|m| m.own_kib).max().unwrap_or_default();
        let mut children: BTreeMap<&str, u64> = BTreeMap::new();
        for m in &by[&c] {
            for (name, kib) in &m.children_kib {
                let e = children.entry(name).or_default();
                *e = (*e).max(*kib);
            }
        }
        let children: Vec<String> = children
            .iter()
            .map(|(n, k)| format!("{n} {:.0} MiB", *k as f64 / 1024.0))
            .collect();
        println!(
            "aphex-runner deploy, concurrency {c}: peak RSS {:.1} MiB (target 64 MiB){}; children apart: {}",
            own as f64 / 1024.0,
            if own < 64 * 1024 { "" } else { " OVER TARGET" },
            children.join(", ")
        );
    }
    println!("machine after: load average {}", loadavg());
    Ok(())
}

/// nproc, CPU model and load average.
pub(crate) fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("nproc {nproc}, {cpu}, load average {}", loadavg())
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// One `aphex-runner deploy --env e2e` of a fresh commit of the parallel app
/// with unique stack names.
fn deploy_once(
    root: &Path,
    runner: &Path,
    emulator: &Emulator,
    dir: &Path,
    concurrency: u32,
    tag: &str,
) -> Result<Measure> {
    let id = format!("bench-{}-{tag}-c{concurrency}", std::process::id());
    let repo = dir.join(&id);
    let prefix = format!("{id}-");
    app_repo(root, &repo, &prefix, concurrency)?;
    let sha = git(&repo, &["rev-parse", "HEAD"])?;
    let mut cmd = Command::new(runner);
    aws_env(&mut cmd, emulator)
        .args([
            "deploy",
            "--env",
            "e2e",
            "--commit-sha",
            &sha,
            "--workflow-id",
            &id,
        ])
        .arg("--repo-url")
        .arg(&repo)
        // The branch the commit must be on, as the WorkflowTemplate passes it.
        .args(["--branch", "main"])
        .arg("--work-dir")
        .arg(dir.join(format!("{id}-work")))
        .arg("--outputs-dir")
        .arg(dir.join(format!("{id}-outputs")))
        .env("APHEX_ARTIFACT_BUCKET", BUCKET)
        .env("APHEX_LOG", "info")
        .envs(crate::npm::node_env(root))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("running {}", runner.display()))?;
    let pid = child.id();
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    // Each line with when it arrived: the runner writes a line per event.
    let lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .map(|l| (Instant::now(), l))
            .collect::<Vec<_>>()
    });
    let errors = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let mut own_kib = 0;
    let mut children_kib: BTreeMap<String, u64> = BTreeMap::new();
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for aphex-runner")? {
            break status;
        }
        if let Some(kib) = vm_hwm(pid) {
            own_kib = own_kib.max(kib);
        }
        // A child still named aphex-runner is a fork before its exec.
        for (child_pid, name) in named_descendants(pid)
            .into_iter()
            .filter(|(_, n)| n != "aphex-runner")
        {
            if let Some(kib) = vm_hwm(child_pid) {
                let e = children_kib.entry(name).or_default();
                *e = (*e).max(kib);
            }
        }
        // Sampling memory, not timing: VmHWM is a high-water mark, so only
        // the last interval before exit can be missed.
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = start.elapsed();
    let lines = lines.join().unwrap_or_default();
    let errors = errors.join().unwrap_or_default();
    let text = || {
        lines
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
            + &errors
    };
    if !status.success() {
        bail!("aphex-runner deploy ({id}) failed ({status}):\n{}", text());
    }
    let per_stack: Vec<f64> = lines
        .iter()
        .filter_map(|(_, l)| {
            let rest = &l[l.find(": deployed in ")? + ": deployed in ".len()..];
            let end = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
            rest[..end].parse().ok()
        })
        .collect();
    let deployed = per_stack.len();
    if deployed != 6 {
        bail!(
            "aphex-runner deploy ({id}) deployed {deployed} stacks, not 6:\n{}",
            text()
        );
    }
    let at = |needle: &str| lines.iter().find(|(_, l)| l.contains(needle)).map(|(t, _)| *t);
    let (Some(from), Some(to)) = (at("deploying e2e with"), at("stack outputs written")) else {
        bail!(
            "aphex-runner deploy ({id}): no stack-phase lines in its log:\n{}",
            text()
        );
    };
    Ok(Measure {
        wall,
        stacks: to - from,
        per_stack,
        own_kib,
        children_kib,
    })
}

/// The parallel variant of `tests/cdk-apps` as a fresh git repository at
/// `repo`, with stack names prefixed and the given concurrency.
fn app_repo(root: &Path, repo: &Path, prefix: &str, concurrency: u32) -> Result<()> {
    let src = root.join("tests/cdk-apps");
    copy_tree(&src, repo)?;
    let _ = std::fs::remove_dir_all(repo.join("configs"));
    let config = std::fs::read_to_string(src.join("configs/parallel.yaml"))
        .context("reading configs/parallel.yaml")?;
    let synth = "synth: node app.js parallel";
    if !config.contains(synth) || !config.contains("concurrency: 2") {
        bail!("tests/cdk-apps/configs/parallel.yaml changed: no `{synth}` or `concurrency: 2` to adjust");
    }
    let config = config
        .replace(synth, &format!("{synth} --prefix {prefix}"))
        .replace("concurrency: 2", &format!("concurrency: {concurrency}"));
    std::fs::write(repo.join("aphex-config.yaml"), config).context("writing the bench app's config")?;
    git(repo, &["init", "-q", "-b", "main"])?;
    git(repo, &["add", "-A"])?;
    git(repo, &["commit", "-q", "-m", "bench"])?;
    Ok(())
}

/// Runs `git args` in `dir` with a throwaway identity; its trimmed output.
pub(crate) fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=aphex-bench",
            "-c",
            "user.email=bench@aphex.invalid",
        ])
        .args(["-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .context("running git")?;
    if !output.status.success() {
        bail!(
            "git {} in {} failed: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Copies `src` into `dest`, without installed packages or local state.
pub(crate) fn copy_tree(src: &Path, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    for entry in std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if ["node_modules", ".aphex", "cdk.out", "artifacts"]
            .iter()
            .any(|n| name == *n)
        {
            continue;
        }
        let to: PathBuf = dest.join(&name);
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &to)?;
        } else {
            std::fs::copy(entry.path(), &to).with_context(|| format!("copying to {}", to.display()))?;
        }
    }
    Ok(())
}

/// The process's resident-set high-water mark in KiB, while it runs.
pub(crate) fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Every live descendant of `pid`, through each thread's `children` list
/// (a multi-threaded tool spawns from any of its threads).
pub(crate) fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else {
            continue;
        };
        for task in tasks.filter_map(|t| t.ok()) {
            let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

/// [`descendants`] of `pid` that are still there, with their command names.
fn named_descendants(pid: u32) -> Vec<(u32, String)> {
    descendants(pid)
        .into_iter()
        .filter_map(|p| {
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).ok()?;
            Some((p, comm.trim_end().to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_read_for_a_process_and_its_descendants() {
        assert!(vm_hwm(std::process::id()).is_some_and(|k| k > 0), "our own VmHWM");
        // A child that waits on its stdin until we close it. Its echo of a
        // line proves it runs `cat` (a child read between fork and exec
        // still bears this test thread's name).
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"ready\n").unwrap();
        let mut echoed = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut echoed)
            .unwrap();
        assert_eq!(echoed, "ready\n");
        let found = named_descendants(std::process::id());
        let pid = child.id();
        drop(child.stdin.take());
        let _ = child.wait();
        assert!(
            found.iter().any(|(p, name)| *p == pid && name == "cat"),
            "cat (pid {pid}) among our descendants: {found:?}"
        );
    }
}
