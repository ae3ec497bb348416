//! `cargo xtask bench`: measures loading and validating a generated
//! configuration of 100 environments x 50 stacks (the DESIGN §8 scale), in
//! the release profile, against libyaml-safer alone on the same text (the
//! parser the loader runs), and runs the other parts (rendering, deploying,
//! a build's runaway output, deploying through faults, against the CDK
//! CLI). Results go in
//! docs/benchmarks.md.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// Environments in the generated configuration.
pub const ENVIRONMENTS: usize = 100;
/// Stacks per environment.
pub const STACKS: usize = 50;

/// A valid configuration of `envs` environments with `stacks` stacks each;
/// every stack after the first depends on the one before it, so the cycle
/// check walks real chains.
pub fn generate(envs: usize, stacks: usize) -> String {
    let mut y = String::from(
        "version: \"1.0\"\npipeline:\n  name: bench\nbuild:\n  commands: [\"npm ci\", \"npm run build\"]\nenvironments:\n",
    );
    for e in 0..envs {
        let _ = write!(
            y,
            "  - name: env-{e}\n    region: us-east-1\n    account: \"{:012}\"\n    approval: manual\n    stacks:\n",
            100_000_000_000u64 + e as u64
        );
        for s in 0..stacks {
            let _ = write!(y, "      - name: Stack{s}\n        path: lib/stack-{s}.ts\n");
            if s > 0 {
                let _ = writeln!(y, "        dependsOn: [Stack{}]", s - 1);
            }
        }
        let _ = write!(y, "    tests:\n      commands: [\"npm test\"]\n");
    }
    y
}

/// The parts of `cargo xtask bench` (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Loading and validating the 100 x 50 configuration.
    Config,
    /// Rendering it (in process and the whole `aphex render`).
    Render,
    /// `aphex-runner deploy` on the emulator: concurrency 1 vs 3, peak memory.
    Deploy,
    /// Peak memory of a build printing without end (runner and `run --local`).
    Output,
    /// The quick start through the fault proxy: 0 % vs 15 % of requests faulted.
    Faults,
    /// `aphex run --local` against the CDK CLI's `cdk deploy --all` on the
    /// quick start: first deploy, no-change redeploy, one-stack change.
    VersusCdk,
}

/// Runs the benchmark (every part, or `only` one) and prints the figures.
pub fn run(only: Option<Part>) -> Result<()> {
    if cfg!(debug_assertions) {
        // Timings of a debug build mean nothing; measure the release build.
        let mut args = vec!["run", "--release", "--quiet", "--package", "xtask", "--", "bench"];
        let part = only.map(|p| {
            use clap::ValueEnum as _;
            let value = p.to_possible_value().expect("every part has a name");
            format!("--only={}", value.get_name())
        });
        args.extend(part.as_deref());
        return crate::cargo(&args);
    }
    let wants = |p: Part| only.is_none_or(|o| o == p);
    if wants(Part::Config) {
        config()?;
        hostile();
    }
    if wants(Part::Render) {
        crate::bench_render::run()?;
    }
    if wants(Part::Deploy) {
        crate::bench_deploy::run()?;
    }
    if wants(Part::Output) {
        crate::bench_output::run()?;
    }
    if wants(Part::Faults) {
        crate::bench_faults::run()?;
    }
    if wants(Part::VersusCdk) {
        crate::bench_versus::run()?;
    }
    Ok(())
}

/// Loading and validating, valid and with one problem, with the YAML
/// parse alone.
fn config() -> Result<()> {
    let source = generate(ENVIRONMENTS, STACKS);
    load_timed("load+validate", &source, true)?;
    // One problem, in the last environment: every rule and the schema run
    // the same, then the problem is placed and reported.
    let last = format!("  - name: env-{}\n", ENVIRONMENTS - 1);
    let invalid = source.replace(
        &format!("{last}    region: us-east-1\n"),
        &format!("{last}    region: us-east-one\n"),
    );
    load_timed(
        "  the same with one problem (in the last environment)",
        &invalid,
        false,
    )?;
    machine_reference(&source);
    Ok(())
}

/// The speed of this machine right now, as the YAML parser alone sees it:
/// libyaml-safer producing (and dropping) every event of `source`, the
/// loader's first step. This VM's speed swings by 1.5x from one
/// quarter-hour to the next; this figure says which state the figures
/// above were taken in, and what of a load is the parser's.
fn machine_reference(source: &str) {
    let mut times: Vec<Duration> = (0..30)
        .map(|_| {
            let start = Instant::now();
            let mut parser = libyaml_safer::Parser::<&[u8]>::new();
            parser.set_input(source.as_bytes());
            let mut events = 0usize;
            while let Ok(event) = parser.parse() {
                events += 1;
                if matches!(event.data, libyaml_safer::EventData::StreamEnd) {
                    break;
                }
            }
            assert!(events > 1000, "the parser read the file");
            start.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "  machine reference: libyaml-safer alone, events of the same file: median {:.2} ms, best {:.2} ms",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
    );
}

/// Times `aphex_config::load_str` on `source` (after one warm-up load, which
/// compiles the schema) and prints the median and best of 100 runs; each
/// load must succeed exactly when `valid`.
fn load_timed(what: &str, source: &str, valid: bool) -> Result<()> {
    if aphex_config::load_str("bench.yaml", source).is_ok() != valid {
        bail!("the generated configuration for {what:?} does not load as it should");
    }
    let mut times: Vec<Duration> = (0..100)
        .map(|_| {
            let start = Instant::now();
            let config = aphex_config::load_str("bench.yaml", source);
            let t = start.elapsed();
            assert_eq!(config.is_ok(), valid);
            t
        })
        .collect();
    times.sort();
    println!(
        "{what}, {ENVIRONMENTS} environments x {STACKS} stacks ({} KiB): median {:.2} ms, best {:.2} ms (100 runs)",
        source.len() / 1024,
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
    );
    Ok(())
}

/// Hostile inputs (an alias bomb, deep nesting, a file over the size limit,
/// invalid UTF-8, binary): each must be refused with a clear error well
/// within a second. Measured here rather than asserted in a test.
fn hostile() {
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        bomb.push_str(&format!(
            "{}: &{} [*{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}]\n",
            (b'a' + i) as char,
            (b'a' + i) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char
        ));
    }
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("alias bomb (10^12 nodes expanded)", bomb.into_bytes()),
        ("nesting 100,000 deep", "[".repeat(100_000).into_bytes()),
        ("64 MiB file", vec![b'#'; 64 << 20]),
        ("invalid UTF-8", b"version: \"1.0\"\nbuild: \xff\xfe\n".to_vec()),
        ("binary (NUL bytes)", vec![0u8; 1 << 20]),
    ];
    for (what, bytes) in inputs {
        let start = Instant::now();
        let result = aphex_config::load_bytes("hostile.yaml", &bytes);
        let took = start.elapsed();
        let first = match &result {
            Ok(_) => "ACCEPTED (unexpected)".to_owned(),
            Err(d) => d.first().map(|d| d.message.clone()).unwrap_or_default(),
        };
        println!(
            "hostile input, {what}: refused in {:.2} ms: {first}",
            took.as_secs_f64() * 1e3
        );
    }
}
