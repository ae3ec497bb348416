//! `cargo xtask bench --only versus-cdk`: the release `aphex run --local
//! --env dev --yes` against the pinned CDK CLI's `cdk deploy --all
//! --require-approval never` (from the quick start's `node_modules`), both
//! on the quick start's dev environment (three stacks) in the local AWS
//! emulator, with concurrency 1 and 3. Three scenarios each, in order, from
//! accounts no run used before (a clean emulator for that tool: the emulator
//! keeps accounts apart): a first deploy, a no-change redeploy, and a
//! redeploy after a commit that changes one stack (`QuickstartShared`'s
//! parameter value). The tools alternate, and which goes first alternates
//! from round to round, so a change in the machine's load hits both alike.
//!
//! Reported per scenario: the median wall time of each tool, their ratio
//! (Aphex / CDK), each tool's own share (the wall time less the time its
//! child processes ran: the synth, and for Aphex the build commands, hooks,
//! tests and git), and the peak resident memory of each tool process and of
//! its synth child (`node bin/app.js`) apart. Figures go in
//! docs/benchmarks.md.
//!
//! Child processes are found by walking `/proc/<pid>/task/*/children` every
//! 5 ms: each one's lifetime is known to that step, so a child living under
//! 5 ms may be missed, and then counts as the tool's own time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench_deploy::{copy_tree, descendants, git, vm_hwm};
use crate::demo::{aws_env, bootstrap, prepare_cluster, target_dir};
use crate::emulator::Emulator;

/// The account the pipeline's own stack and its cluster's exports live in
/// (the emulator's default credentials, which `aphex` runs with).
const HOME: &str = "000000000000";

/// Timed rounds (after one untimed warm-up round).
const ROUNDS: usize = 3;

/// The concurrencies compared.
const CONCURRENCY: [u32; 2] = [1, 3];

/// How often the process tree is sampled.
const SAMPLE: Duration = Duration::from_millis(5);

/// What identifies the synth among a tool's child processes.
const SYNTH: &str = "bin/app.js";

/// The scenarios, in the order each round runs them.
const SCENARIOS: [&str; 3] = ["first deploy", "no-change redeploy", "one-stack change"];

/// The two tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tool {
    Aphex,
    Cdk,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Aphex => "aphex run --local",
            Tool::Cdk => "cdk deploy --all",
        }
    }
}

/// One measured run of a tool.
#[derive(Debug, Clone)]
struct Measure {
    wall: Duration,
    /// The time at least one child process ran.
    children: Duration,
    /// The synth child's lifetime.
    synth: Duration,
    /// The tool process's own `VmHWM`, KiB.
    own_kib: u64,
    /// The synth child's `VmHWM`, KiB.
    synth_kib: u64,
}

impl Measure {
    /// The wall time less the time child processes ran.
    fn own(&self) -> Duration {
        self.wall.saturating_sub(self.children)
    }
}

/// Where the binaries and packages are.
struct Tools {
    root: PathBuf,
    aphex: PathBuf,
    cdk: PathBuf,
}

/// Runs the head-to-head.
pub fn run() -> Result<()> {
    let root = crate::root();
    // The emulator boots while the packages install and the binary builds;
    // dropping `emulator` stops it, whatever happens below.
    let mut emulator = Emulator::spawn().context("starting the local AWS emulator")?;
    let node_modules = crate::npm::ensure(&root)?;
    crate::cargo(&["build", "--release", "--quiet", "--package", "aphex-cli"])?;
    emulator
        .wait_healthy()
        .context("starting the local AWS emulator")?;
    bootstrap(&emulator, HOME)?;
    let (_, cluster) = crate::demo::quickstart_config(&root)?;
    prepare_cluster(&emulator, HOME, &cluster)?;
    let cdk = node_modules.join("aws-cdk/bin/cdk");
    if !cdk.is_file() {
        bail!(
            "{} is missing: the quick start pins the CDK CLI (`aws-cdk`)",
            cdk.display()
        );
    }
    let tools = Tools {
        aphex: target_dir(&root).join("release/aphex"),
        cdk,
        root,
    };
    let dir = std::env::temp_dir().join(format!("aphex-bench-versus-{}", std::process::id()));
    let result = measure_all(&tools, &emulator, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Every measure of one tool, concurrency and scenario.
type Table = BTreeMap<(u32, usize, Tool), Vec<Measure>>;

fn measure_all(tools: &Tools, emulator: &Emulator, dir: &Path) -> Result<()> {
    println!("machine: {}", crate::bench_deploy::machine());
    // The first deploys on a fresh emulator load its providers: not measured.
    for tool in [Tool::Aphex, Tool::Cdk] {
        let warm = sequence(tools, emulator, dir, tool, 3, 0)?;
        println!(
            "warm-up, {} (not counted): {}",
            tool.name(),
            warm.iter()
                .map(|m| format!("{:.1} s", m.wall.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut table = Table::new();
    for round in 1..=ROUNDS {
        for concurrency in CONCURRENCY {
            let order = if round % 2 == 1 {
                [Tool::Aphex, Tool::Cdk]
            } else {
                [Tool::Cdk, Tool::Aphex]
            };
            for tool in order {
                let measures = sequence(tools, emulator, dir, tool, concurrency, round)?;
                for (scenario, m) in measures.into_iter().enumerate() {
                    println!(
                        "round {round}, concurrency {concurrency}, {:<18} {:<19} {:>5.2} s (own {:.2} s, synth {:.2} s), peak RSS {:.0} MiB, synth {:.0} MiB",
                        tool.name(),
                        SCENARIOS[scenario],
                        m.wall.as_secs_f64(),
                        m.own().as_secs_f64(),
                        m.synth.as_secs_f64(),
                        mib(m.own_kib),
                        mib(m.synth_kib),
                    );
                    table.entry((concurrency, scenario, tool)).or_default().push(m);
                }
            }
        }
    }
    summary(&table);
    println!("machine after: load average {}", crate::bench_deploy::loadavg());
    Ok(())
}

fn summary(table: &Table) {
    println!("medians of {ROUNDS} rounds (ratio: Aphex / CDK CLI):");
    for concurrency in CONCURRENCY {
        for (s, scenario) in SCENARIOS.iter().enumerate() {
            let of = |tool: Tool| &table[&(concurrency, s, tool)];
            let (a, c) = (of(Tool::Aphex), of(Tool::Cdk));
            let wall = |ms: &[Measure]| median(ms.iter().map(|m| m.wall));
            let own = |ms: &[Measure]| median(ms.iter().map(Measure::own));
            let synth = |ms: &[Measure]| median(ms.iter().map(|m| m.synth));
            println!(
                "  concurrency {concurrency}, {scenario:<19} aphex {:>5.2} s, cdk {:>5.2} s, ratio {:.2}x; own share aphex {:.2} s, cdk {:.2} s; synth aphex {:.2} s, cdk {:.2} s",
                wall(a),
                wall(c),
                wall(a) / wall(c),
                own(a),
                own(c),
                synth(a),
                synth(c),
            );
        }
    }
    for tool in [Tool::Aphex, Tool::Cdk] {
        let all: Vec<&Measure> = table
            .iter()
            .filter(|((_, _, t), _)| *t == tool)
            .flat_map(|(_, ms)| ms)
            .collect();
        let own = all.iter().map(|m| m.own_kib).max().unwrap_or_default();
        let synth = all.iter().map(|m| m.synth_kib).max().unwrap_or_default();
        println!(
            "  peak RSS, {}: the tool process {:.0} MiB, its synth child {:.0} MiB",
            tool.name(),
            mib(own),
            mib(synth)
        );
    }
}

fn median(times: impl Iterator<Item = Duration>) -> f64 {
    let mut v: Vec<f64> = times.map(|t| t.as_secs_f64()).collect();
    v.sort_by(f64::total_cmp);
    v[(v.len() - 1) / 2]
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The three scenarios for `tool`, in accounts of their own: a first
/// deploy, the same commit again, then a commit changing one stack.
fn sequence(
    tools: &Tools,
    emulator: &Emulator,
    dir: &Path,
    tool: Tool,
    concurrency: u32,
    round: usize,
) -> Result<Vec<Measure>> {
    let tag = format!("r{round}-c{concurrency}-{}", tool_tag(tool));
    let account = account(round, concurrency, tool);
    bootstrap(emulator, &account)?;
    let repo = dir.join(format!("quickstart-{tag}"));
    app_repo(
        &tools.root,
        &repo,
        &format!("versus-{tag}"),
        &account,
        concurrency,
    )?;
    let mut measures = Vec::new();
    for (i, scenario) in SCENARIOS.iter().enumerate() {
        if i == 2 {
            change_one_stack(&repo)?;
        }
        let m = match tool {
            Tool::Aphex => aphex(tools, emulator, &repo),
            Tool::Cdk => cdk(tools, emulator, &repo, &account, concurrency),
        }
        .with_context(|| format!("{} ({tag}), {scenario}", tool.name()))?;
        measures.push(m);
    }
    // Both tools deployed the same three stacks each time (checked once,
    // after the change, which both must have applied).
    let shared = stack_parameter(emulator, &account)?;
    if shared != "shared-ready-changed" {
        bail!(
            "{} ({tag}): /aphex-quickstart/stage in account {account} is {shared:?} after the change",
            tool.name()
        );
    }
    Ok(measures)
}

fn tool_tag(tool: Tool) -> &'static str {
    match tool {
        Tool::Aphex => "aphex",
        Tool::Cdk => "cdk",
    }
}

/// A 12-digit account no other run of this bench uses.
fn account(round: usize, concurrency: u32, tool: Tool) -> String {
    let t = match tool {
        Tool::Aphex => 1,
        Tool::Cdk => 2,
    };
    format!(
        "8{:05}{:03}{concurrency}{t}0",
        std::process::id() % 100_000,
        round
    )
}

/// The quick start as a fresh git repository at `repo`: pipeline
/// `pipeline`, dev in `account` with `concurrency`.
fn app_repo(root: &Path, repo: &Path, pipeline: &str, account: &str, concurrency: u32) -> Result<()> {
    copy_tree(&root.join(crate::npm::QUICKSTART), repo)?;
    let file = repo.join("aphex-config.yaml");
    let config = std::fs::read_to_string(&file).context("reading the quick start's config")?;
    let name = "\n  name: quickstart\n";
    let dev = "  - name: dev\n    account: \"000000000000\"\n";
    if !config.contains(name) || !config.contains(dev) {
        bail!(
            "examples/quickstart/aphex-config.yaml changed: no `{}` or dev environment in account 000000000000 to adjust",
            name.trim()
        );
    }
    let config = config
        .replace(
            dev,
            &format!("  - name: dev\n    account: \"{account}\"\n    concurrency: {concurrency}\n"),
        )
        .replace("--account 000000000000", &format!("--account {account}"))
        .replace(name, &format!("\n  name: {pipeline}\n"));
    std::fs::write(&file, config).context("writing the bench app's config")?;
    git(repo, &["init", "-q", "-b", "main"])?;
    git(repo, &["add", "-A"])?;
    git(repo, &["commit", "-q", "-m", "bench"])?;
    Ok(())
}

/// Changes `QuickstartShared` alone (its parameter's value, which no other
/// stack reads) and commits it.
fn change_one_stack(repo: &Path) -> Result<()> {
    let file = repo.join("lib/shared-stack.js");
    let source = std::fs::read_to_string(&file).context("reading lib/shared-stack.js")?;
    let value = "stringValue: 'shared-ready',";
    if !source.contains(value) {
        bail!("examples/quickstart/lib/shared-stack.js changed: no `{value}` to change");
    }
    std::fs::write(
        &file,
        source.replace(value, "stringValue: 'shared-ready-changed',"),
    )?;
    git(repo, &["commit", "-q", "-am", "change one stack"])?;
    Ok(())
}

/// The value of the shared stack's parameter in `account`.
fn stack_parameter(emulator: &Emulator, account: &str) -> Result<String> {
    let out = crate::demo::aws_output(
        emulator,
        account,
        &["ssm", "get-parameter", "--name", "/aphex-quickstart/stage"],
    )?;
    let value: serde_json::Value = serde_json::from_str(&out).context("reading get-parameter's answer")?;
    Ok(value["Parameter"]["Value"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// `aphex run --local --env dev --yes` in `repo`.
fn aphex(tools: &Tools, emulator: &Emulator, repo: &Path) -> Result<Measure> {
    let mut cmd = Command::new(&tools.aphex);
    aws_env(&mut cmd, emulator)
        .args(["run", "--local", "--env", "dev", "--yes"])
        .current_dir(repo)
        .envs(crate::npm::node_env(&tools.root))
        .env_remove(aphex_template::workflow::SLACK_WEBHOOK_ENV);
    measure(cmd)
}

/// The pinned CDK CLI's `cdk deploy --all` in `repo`, as `account`.
fn cdk(tools: &Tools, emulator: &Emulator, repo: &Path, account: &str, concurrency: u32) -> Result<Measure> {
    let mut cmd = Command::new("node");
    aws_env(&mut cmd, emulator)
        .arg(&tools.cdk)
        .args(["deploy", "--all", "--require-approval", "never", "--no-notices"])
        .args(["--concurrency", &concurrency.to_string()])
        .current_dir(repo)
        .envs(crate::npm::node_env(&tools.root))
        // The emulator takes a 12-digit access key ID as the account.
        .env("AWS_ACCESS_KEY_ID", account);
    measure(cmd)
}

/// Runs `cmd` to completion, sampling its process tree.
fn measure(mut cmd: Command) -> Result<Measure> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().context("starting the tool")?;
    let pid = child.id();
    let drain = |pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || std::io::read_to_string(pipe).unwrap_or_default())
    };
    let out = drain(Box::new(child.stdout.take().expect("piped")));
    let err = drain(Box::new(child.stderr.take().expect("piped")));
    let mut own_kib = 0;
    let mut seen: BTreeMap<u32, Child> = BTreeMap::new();
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for the tool")? {
            break status;
        }
        let now = Instant::now();
        if let Some(kib) = vm_hwm(pid) {
            own_kib = own_kib.max(kib);
        }
        for p in descendants(pid) {
            let c = seen.entry(p).or_insert_with(|| Child {
                first: now,
                last: now,
                synth: false,
                kib: 0,
            });
            c.last = now;
            // Read until it is the synth: a fork is not yet the program it runs.
            if !c.synth {
                c.synth = is_synth(p);
            }
            if let Some(kib) = vm_hwm(p) {
                c.kib = c.kib.max(kib);
            }
        }
        // Sampling the process tree, not timing: see the module documentation.
        std::thread::sleep(SAMPLE);
    };
    let wall = start.elapsed();
    let (out, err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    if !status.success() {
        bail!("failed ({status}):\n{out}\n{err}");
    }
    let synth: Vec<&Child> = seen.values().filter(|c| c.synth).collect();
    if synth.is_empty() {
        bail!("no synth (`{SYNTH}`) was seen among its child processes:\n{out}\n{err}");
    }
    Ok(Measure {
        wall,
        children: union(seen.values().map(|c| (c.first, c.last))),
        synth: union(synth.iter().map(|c| (c.first, c.last))),
        own_kib,
        synth_kib: synth.iter().map(|c| c.kib).max().unwrap_or_default(),
    })
}

/// A child process as sampled.
struct Child {
    first: Instant,
    last: Instant,
    synth: bool,
    kib: u64,
}

/// Whether `pid` is node running the CDK app.
fn is_synth(pid: u32) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    comm.trim() == "node" && String::from_utf8_lossy(&cmdline).contains(SYNTH)
}

/// The total length of the union of `intervals`.
fn union(intervals: impl Iterator<Item = (Instant, Instant)>) -> Duration {
    let mut v: Vec<(Instant, Instant)> = intervals.collect();
    v.sort();
    let mut total = Duration::ZERO;
    let mut current: Option<(Instant, Instant)> = None;
    for (from, to) in v {
        current = match current {
            Some((a, b)) if from <= b => Some((a, b.max(to))),
            Some((a, b)) => {
                total += b - a;
                Some((from, to))
            }
            None => Some((from, to)),
        };
    }
    if let Some((a, b)) = current {
        total += b - a;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_lifetimes_count_once() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        let total = union([(at(0), at(10)), (at(5), at(20)), (at(30), at(40))].into_iter());
        assert_eq!(total, Duration::from_millis(30));
        assert_eq!(union(std::iter::empty()), Duration::ZERO);
    }

    #[test]
    fn a_child_is_found_through_its_parent_s_threads() {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let found = descendants(std::process::id());
        let pid = child.id();
        drop(child.stdin.take());
        let _ = child.wait();
        assert!(found.contains(&pid), "cat (pid {pid}) among {found:?}");
    }

    #[test]
    fn accounts_are_twelve_digits_and_apart() {
        let a = account(1, 3, Tool::Aphex);
        let c = account(1, 3, Tool::Cdk);
        assert_eq!(a.len(), 12, "{a}");
        assert!(a.chars().all(|c| c.is_ascii_digit()));
        assert_ne!(a, c);
        assert_ne!(account(0, 3, Tool::Aphex), a);
    }
}
