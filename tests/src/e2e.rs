//! Helpers of the end-to-end tests that drive the real `aphex` binary
//! against the emulator: an application repository made from the quick start
//! or a `tests/cdk-apps` variant (a fresh git repository per test), running
//! `aphex` in it, and reading back what CloudFormation saw.
//!
//! The binary is `target/debug/aphex` next to the test executable, built by
//! `cargo test --workspace` (what `cargo xtask test` runs): driving the binary
//! covers the CLI's wiring (`--store`, the summary) that the library alone
//! would not. Building it from inside a test would unify features
//! differently and rebuild the dependencies, so a missing binary is a clear
//! failure instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use aphex_testkit::git;
use aws_config::SdkConfig;

use crate::bootstrap::{account_config, prepare_bootstrap};
use crate::cluster::prepare_cluster;
use crate::{DEFAULT_ACCOUNT, REGION, unique_name};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// `target/debug/aphex`, next to this test executable's `deps/` folder.
pub fn aphex_bin() -> PathBuf {
    workspace_bin("aphex", "aphex-cli")
}

/// The workspace binary `name` (of `package`), next to this test
/// executable's `deps/` folder (`cargo test --workspace` builds it).
pub fn workspace_bin(name: &str, package: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let debug = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps/");
    let bin = debug.join(name);
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p {package}` (or run `cargo xtask test`, \
         which builds every binary before the tests)",
        bin.display()
    );
    bin
}

/// The quick start's shared npm install (`cargo xtask npm`).
pub fn node_modules() -> PathBuf {
    let dir = workspace().join("examples/quickstart/node_modules");
    assert!(
        dir.join("aws-cdk-lib").is_dir(),
        "{} has no aws-cdk-lib: run `cargo xtask npm` (`cargo xtask test` does)",
        dir.display()
    );
    dir
}

/// A 12-digit account of its own for one test: the emulator takes any
/// 12-digit access key ID as an account, so stacks, exports and parameters of
/// different tests (and of earlier runs on a long-lived emulator) never meet.
pub fn unique_account() -> String {
    let name = unique_name("a");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    // Starts with 2..9: never one of the fixed accounts the other tests use.
    format!("{}{:011}", 2 + hash % 8, (hash >> 3) % 100_000_000_000)
}

/// An application repository in a temporary folder, committed once.
pub struct AppRepo {
    dir: tempfile::TempDir,
    /// The commit's full SHA.
    pub commit: String,
    /// Whether its synth runs the CDK (which needs the shared npm install).
    cdk: bool,
}

impl AppRepo {
    /// The quick start, with `aphex-config.yaml` edited by `edit`.
    pub fn quickstart(edit: impl FnOnce(String) -> String) -> AppRepo {
        let dir = tempfile::tempdir().expect("a temporary folder");
        copy_tree(&workspace().join("examples/quickstart"), dir.path());
        edit_file(&dir.path().join("aphex-config.yaml"), edit);
        AppRepo::commit(dir)
    }

    /// The `tests/cdk-apps` app with `configs/<variant>.yaml` as its config,
    /// edited by `edit`.
    pub fn cdk_app(variant: &str, edit: impl FnOnce(String) -> String) -> AppRepo {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let src = workspace().join("tests/cdk-apps");
        copy_tree(&src, dir.path());
        let _ = std::fs::remove_dir_all(dir.path().join("configs"));
        let config = std::fs::read_to_string(src.join(format!("configs/{variant}.yaml")))
            .expect("the variant's config");
        std::fs::write(dir.path().join("aphex-config.yaml"), edit(config)).expect("writing the config");
        AppRepo::commit(dir)
    }

    /// A repository of `files` (path, text), committed.
    pub fn from_files(files: &[(&str, String)]) -> AppRepo {
        let dir = tempfile::tempdir().expect("a temporary folder");
        write_files(dir.path(), files);
        AppRepo {
            cdk: false,
            ..AppRepo::commit(dir)
        }
    }

    /// Writes `files` (path, text) and commits them as the new HEAD.
    pub fn commit_files(&mut self, files: &[(&str, String)], message: &str) {
        write_files(self.path(), files);
        git(self.path(), &["add", "-A"]);
        git(self.path(), &["commit", "-q", "-m", message]);
        self.commit = git(self.path(), &["rev-parse", "HEAD"]);
    }

    fn commit(dir: tempfile::TempDir) -> AppRepo {
        git(dir.path(), &["init", "-q", "-b", "main"]);
        git(dir.path(), &["add", "-A"]);
        git(dir.path(), &["commit", "-q", "-m", "app"]);
        let commit = git(dir.path(), &["rev-parse", "HEAD"]);
        AppRepo {
            dir,
            commit,
            cdk: true,
        }
    }

    /// The repository's folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `aphex <args>` in the repository, pointed at the emulator with
    /// the default account's credentials and the shared npm install.
    pub fn aphex(&self, args: &[&str]) -> Run {
        self.aphex_at(crate::emulator().endpoint(), args)
    }

    /// Like [`AppRepo::aphex`], with `AWS_ENDPOINT_URL` set to `endpoint`
    /// (a fault proxy in front of the emulator).
    pub fn aphex_at(&self, endpoint: &str, args: &[&str]) -> Run {
        let output = self.command(endpoint, args).output().expect("running aphex");
        Run::from(output)
    }

    /// Starts `aphex <args>` like [`AppRepo::aphex_at`], in a process group
    /// of its own (as a pod's main process is), its output going to files,
    /// for a test that signals it while it works.
    pub fn spawn_at(&self, endpoint: &str, args: &[&str]) -> Spawned {
        use std::os::unix::process::CommandExt;
        let out = tempfile::NamedTempFile::new().expect("a file for stdout");
        let err = tempfile::NamedTempFile::new().expect("a file for stderr");
        let child = self
            .command(endpoint, args)
            .process_group(0)
            .stdout(out.reopen().expect("reopening"))
            .stderr(err.reopen().expect("reopening"))
            .spawn()
            .expect("starting aphex");
        Spawned { child, out, err }
    }

    fn command(&self, endpoint: &str, args: &[&str]) -> Command {
        let emulator = crate::emulator();
        let mut cmd = Command::new(aphex_bin());
        for var in ["AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"] {
            cmd.env_remove(var);
        }
        cmd.args(args)
            .current_dir(self.path())
            .envs(emulator.child_env())
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("CDK_DISABLE_CLI_TELEMETRY", "true")
            .env("CDK_DISABLE_VERSION_CHECK", "1")
            .stdin(Stdio::null());
        if self.cdk {
            cmd.env("NODE_PATH", node_modules());
        }
        cmd
    }
}

/// An `aphex` process started by [`AppRepo::spawn_at`]; killed (with its
/// group) if dropped while running.
pub struct Spawned {
    child: std::process::Child,
    out: tempfile::NamedTempFile,
    err: tempfile::NamedTempFile,
}

impl Spawned {
    /// Sends `signal` (`TERM`, `KILL`, ...) to the process's whole group,
    /// as the kubelet does to a pod's processes.
    pub fn signal(&self, signal: &str) {
        assert!(self.send(signal), "kill -s {signal} of aphex's group failed");
    }

    fn send(&self, signal: &str) -> bool {
        Command::new("kill")
            .args(["-s", signal, "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("checking on aphex").is_none()
    }

    /// Its standard error so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.err.path()).unwrap_or_default()
    }

    /// Waits for it to exit, at most `bound` (then it is killed and the
    /// test fails), and returns what it did and how long the wait took.
    pub fn wait(mut self, bound: std::time::Duration) -> (Run, std::time::Duration) {
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for aphex") {
                break status;
            }
            if start.elapsed() > bound {
                self.send("KILL");
                let _ = self.child.wait();
                panic!(
                    "aphex did not exit within {bound:?}; its stderr:\n{}",
                    self.stderr()
                );
            }
            // Polling the child's exit, not timing the test.
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let took = start.elapsed();
        let run = Run {
            code: status.code(),
            stdout: std::fs::read_to_string(self.out.path()).unwrap_or_default(),
            stderr: self.stderr(),
        };
        (run, took)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.send("KILL");
            let _ = self.child.wait();
        }
    }
}

/// The quick start's stacks, in each environment.
pub const STACKS: [&str; 3] = ["QuickstartShared", "QuickstartApp", "QuickstartAudit"];

/// The quick start in accounts of its own, pipeline and cluster of its own,
/// with an S3 store bucket: what `aphex run --local --store` needs.
pub struct QuickStart {
    /// The repository.
    pub repo: AppRepo,
    /// dev's account.
    pub dev: String,
    /// prod's account.
    pub prod: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// `s3://BUCKET`.
    pub store: String,
}

pub async fn quick_start() -> QuickStart {
    let emulator = crate::emulator();
    let (dev, prod) = (unique_account(), unique_account());
    for account in [dev.as_str(), prod.as_str(), DEFAULT_ACCOUNT] {
        prepare_bootstrap(account, REGION).await.expect("bootstrapping");
    }
    let base = emulator.aws_config().await;
    let bucket = unique_name("aphex-faults-store");
    aphex_aws::client::s3(&base)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("creating the store bucket");
    let pipeline = unique_name("faults");
    let cluster = unique_name("cluster");
    prepare_cluster(&base, DEFAULT_ACCOUNT, &cluster)
        .await
        .expect("the cluster's exports");
    let repo = AppRepo::quickstart(|config| {
        config
            .replace("000000000000", &dev)
            .replace("111111111111", &prod)
            .replace("\n  name: quickstart\n", &format!("\n  name: {pipeline}\n"))
            .replace(
                "cluster: { name: demo }",
                &format!("cluster: {{ name: {cluster} }}"),
            )
    });
    QuickStart {
        repo,
        dev,
        prod,
        pipeline,
        store: format!("s3://{bucket}"),
    }
}

/// Each output of each stack, as CloudFormation has it.
pub async fn outputs_of(account: &str) -> serde_json::Value {
    let config = account_config(account, REGION).await;
    let cfn = aws_sdk_cloudformation::Client::new(&config);
    let mut all = serde_json::Map::new();
    for stack in STACKS {
        let described = cfn
            .describe_stacks()
            .stack_name(stack)
            .send()
            .await
            .expect("DescribeStacks");
        let outputs: serde_json::Map<String, serde_json::Value> = described.stacks()[0]
            .outputs()
            .iter()
            .map(|o| {
                (
                    o.output_key().unwrap_or_default().to_owned(),
                    o.output_value().unwrap_or_default().into(),
                )
            })
            .collect();
        all.insert(stack.to_owned(), outputs.into());
    }
    all.into()
}

/// What one `aphex` process did.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: Option<i32>,
    /// Standard output (the summary).
    pub stdout: String,
    /// Standard error (progress).
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Both streams, for assertion messages.
    pub fn text(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// The value of the summary's `<label>: ` line.
    pub fn summary_line(&self, label: &str) -> String {
        let prefix = format!("{label}: ");
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in the summary:\n{}", self.text()))
            .trim()
            .to_owned()
    }

    /// The run record of a run without `--store` (its `record:` file).
    pub fn local_record(&self) -> serde_json::Value {
        let path = self.summary_line("record");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        serde_json::from_str(&text).expect("a JSON run record")
    }
}

/// Copies `src` into `dest`, without installed packages or local state.
fn copy_tree(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).expect("creating a folder");
    for entry in std::fs::read_dir(src).expect("reading a source folder") {
        let entry = entry.expect("a folder entry");
        let name = entry.file_name();
        if ["node_modules", ".aphex", "cdk.out"].iter().any(|n| name == *n) {
            continue;
        }
        let to = dest.join(&name);
        if entry.file_type().expect("a file type").is_dir() {
            copy_tree(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).expect("copying a file");
        }
    }
}

fn write_files(root: &Path, files: &[(&str, String)]) {
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().expect("a file in a folder")).expect("creating a folder");
        std::fs::write(&path, text).expect("writing a file");
    }
}

fn edit_file(path: &Path, edit: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(path).expect("reading a file to edit");
    std::fs::write(path, edit(text)).expect("writing an edited file");
}

/// The time range (seconds since the epoch) of a stack's CloudFormation
/// events: when its deploy started and when it ended, as CloudFormation saw it.
pub async fn event_range(config: &SdkConfig, stack: &str) -> (f64, f64) {
    let cfn = aws_sdk_cloudformation::Client::new(config);
    let mut pages = cfn
        .describe_stack_events()
        .stack_name(stack)
        .into_paginator()
        .send();
    let mut times = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.unwrap_or_else(|e| panic!("DescribeStackEvents of {stack}: {e:?}"));
        times.extend(
            page.stack_events()
                .iter()
                .filter_map(|e| e.timestamp())
                .map(|t| t.as_secs_f64()),
        );
    }
    assert!(!times.is_empty(), "stack {stack} has no events");
    let start = times.iter().copied().fold(f64::INFINITY, f64::min);
    let end = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (start, end)
}

/// How many times the stack was created: its own `CREATE_IN_PROGRESS`
/// events (0 when it does not exist).
pub async fn stack_creates(config: &SdkConfig, stack: &str) -> usize {
    let cfn = aws_sdk_cloudformation::Client::new(config);
    let mut pages = cfn
        .describe_stack_events()
        .stack_name(stack)
        .into_paginator()
        .send();
    let mut creates = 0;
    while let Some(page) = pages.next().await {
        let Ok(page) = page else { return 0 };
        creates += page
            .stack_events()
            .iter()
            .filter(|e| {
                e.logical_resource_id() == Some(stack)
                    && e.resource_type() == Some("AWS::CloudFormation::Stack")
                    && e.resource_status().map(|s| s.as_str()) == Some("CREATE_IN_PROGRESS")
            })
            .count();
    }
    creates
}

/// The stack's status, or `None` when it does not exist.
pub async fn stack_status(config: &SdkConfig, stack: &str) -> Option<String> {
    let cfn = aws_sdk_cloudformation::Client::new(config);
    match cfn.describe_stacks().stack_name(stack).send().await {
        Ok(out) => out
            .stacks()
            .first()
            .and_then(|s| s.stack_status())
            .map(|s| s.as_str().to_owned()),
        Err(e) => {
            let text = format!("{e:?}");
            assert!(
                text.contains("does not exist"),
                "DescribeStacks of {stack} failed for another reason: {text}"
            );
            None
        }
    }
}

/// Sum and sample count of `Aphex` metric `name` with exactly `dimensions`,
/// over the hour around now, read back with `GetMetricStatistics`.
/// The namespace of metrics with these dimensions: their pipeline's.
fn metrics_namespace(dimensions: &[(&str, &str)]) -> String {
    let pipeline = dimensions
        .iter()
        .find(|(k, _)| *k == aphex_aws::cloudwatch::PIPELINE_DIMENSION)
        .map(|(_, v)| *v)
        .expect("metrics are looked up by their pipeline dimension");
    aphex_template::cloudformation::metrics_namespace(pipeline)
}

pub async fn metric_statistics(config: &SdkConfig, name: &str, dimensions: &[(&str, &str)]) -> (f64, f64) {
    let now = std::time::SystemTime::now();
    let hour = std::time::Duration::from_secs(3600);
    let namespace = metrics_namespace(dimensions);
    let dimensions = dimensions
        .iter()
        .map(|(k, v)| {
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name(*k)
                .value(*v)
                .build()
        })
        .collect();
    let out = aws_sdk_cloudwatch::Client::new(config)
        .get_metric_statistics()
        .namespace(namespace)
        .metric_name(name)
        .set_dimensions(Some(dimensions))
        .start_time((now - hour).into())
        .end_time((now + hour).into())
        .period(7200)
        .statistics(aws_sdk_cloudwatch::types::Statistic::Sum)
        .statistics(aws_sdk_cloudwatch::types::Statistic::SampleCount)
        .send()
        .await
        .expect("GetMetricStatistics");
    out.datapoints().iter().fold((0.0, 0.0), |(sum, count), d| {
        (
            sum + d.sum().unwrap_or(0.0),
            count + d.sample_count().unwrap_or(0.0),
        )
    })
}
