//! `cargo xtask demo`: the README's main job. Starts the local AWS emulator,
//! prepares what `cdk bootstrap` leaves in both of the quick start's accounts
//! and a stand-in for the shared cluster's stack (its exports only), installs
//! the quick start's npm packages, runs the real `aphex` binary
//! (`aphex run --local examples/quickstart --yes`) against the emulator, which
//! prints the run summary, and prints the captured stack outputs and the
//! pipeline stack's. The emulator stops when the demo ends, fails, or is
//! interrupted (Ctrl-C: the emulator's watchdog stops it once xtask is gone).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::emulator::Emulator;

/// The quick start's accounts (`examples/quickstart/aphex-config.yaml`).
const ACCOUNTS: [&str; 2] = ["000000000000", "111111111111"];

/// The quick start's region.
const REGION: &str = "us-east-1";

/// The CDK's default bootstrap qualifier.
const QUALIFIER: &str = "hnb659fds";

/// Runs the demo.
pub fn run() -> Result<()> {
    let root = crate::root();
    // The emulator boots (about 35 s cold) while the packages install and
    // `aphex` builds; dropping `emulator` stops it, whatever happens below.
    let mut emulator = Emulator::spawn().context("starting the local AWS emulator")?;
    crate::npm::ensure(&root)?;
    crate::cargo(&["build", "--quiet", "--package", "aphex-cli"])?;
    emulator
        .wait_healthy()
        .context("starting the local AWS emulator")?;
    for account in ACCOUNTS {
        bootstrap(&emulator, account)?;
    }
    let (config, cluster) = quickstart_config(&root)?;
    prepare_cluster(&emulator, ACCOUNTS[0], &cluster)?;
    let aphex = target_dir(&root).join("debug/aphex");
    let runs = root.join(".aphex/runs").join(config.pipeline_name());
    let before = run_dirs(&runs);
    let status = run_aphex(&root, &aphex, &emulator)?;
    let new: Vec<PathBuf> = run_dirs(&runs)
        .into_iter()
        .filter(|d| !before.contains(d))
        .collect();
    if let [run] = new.as_slice() {
        print_outputs(&run.join("outputs"))?;
    }
    print_pipeline_stack(
        &emulator,
        ACCOUNTS[0],
        &aphex_template::cloudformation::pipeline_stack_name(&config),
    )?;
    if status.code() == Some(130) {
        bail!("interrupted: aphex recorded the run as interrupted; the emulator stops with the demo");
    }
    if !status.success() {
        bail!(
            "aphex run --local failed ({status}); the log of every stage is under the `logs:` folder above"
        );
    }
    println!();
    println!(
        "The quick start deployed its pipeline stack and two environments' stacks to two accounts \
         of a local AWS emulator, which stops now. Run it again, or `aphex history` to list the \
         recorded runs."
    );
    Ok(())
}

/// What `cargo build` writes binaries under (`CARGO_TARGET_DIR` or `target/`).
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// Puts the bootstrap version parameter and creates the assets bucket in
/// `account` (the emulator takes a 12-digit access key ID as the account).
pub(crate) fn bootstrap(emulator: &Emulator, account: &str) -> Result<()> {
    let bucket = format!("cdk-{QUALIFIER}-assets-{account}-{REGION}");
    aws(
        emulator,
        account,
        &[
            "ssm",
            "put-parameter",
            "--name",
            &format!("/cdk-bootstrap/{QUALIFIER}/version"),
            "--value",
            "30",
            "--type",
            "String",
            "--overwrite",
        ],
    )
    .with_context(|| format!("putting the CDK bootstrap version parameter in account {account}"))?;
    aws(
        emulator,
        account,
        &["s3api", "create-bucket", "--bucket", &bucket],
    )
    .with_context(|| format!("creating the CDK assets bucket {bucket} in account {account}"))?;
    eprintln!(
        "xtask: account {account} bootstrapped (SSM /cdk-bootstrap/{QUALIFIER}/version, s3://{bucket})"
    );
    Ok(())
}

/// The quick start's config and the cluster it names (the demo and the
/// benchmarks prepare that cluster's OIDC provider in the emulator).
pub(crate) fn quickstart_config(root: &Path) -> Result<(aphex_config::Config, aphex_config::Cluster)> {
    let config_path = root.join(crate::npm::QUICKSTART).join("aphex-config.yaml");
    let config = aphex_config::load_file(&config_path)
        .map_err(|d| anyhow::anyhow!("{} is invalid: {d:?}", config_path.display()))?;
    let cluster = config
        .settings()
        .cluster
        .clone()
        .context("the quick start's config names no `pipeline.cluster`")?;
    Ok((config, cluster))
}

/// Creates the stand-in for the shared EKS cluster's stack in `account`: no
/// cluster, only the exports `<prefix>ClusterName`, `<prefix>OIDCProviderArn`
/// and `<prefix>KubectlRoleArn` that discovery reads and the pipeline stack
/// imports. Waits (bounded) until the stack is complete.
pub(crate) fn prepare_cluster(
    emulator: &Emulator,
    account: &str,
    cluster: &aphex_config::Cluster,
) -> Result<()> {
    let prefix = cluster.export_prefix();
    let name = &cluster.name;
    let values = [
        ("ClusterName", name.clone()),
        (
            "OIDCProviderArn",
            format!(
                "arn:aws:iam::{account}:oidc-provider/oidc.eks.{REGION}.amazonaws.com/id/{}",
                name.to_ascii_uppercase()
            ),
        ),
        (
            "KubectlRoleArn",
            format!("arn:aws:iam::{account}:role/{name}-kubectl"),
        ),
    ];
    let outputs: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .map(|(suffix, value)| {
            (
                (*suffix).to_owned(),
                serde_json::json!({ "Value": value, "Export": { "Name": format!("{prefix}{suffix}") } }),
            )
        })
        .collect();
    let template = serde_json::json!({
        "Description": format!("Stand-in for the EKS cluster {name} (demo): its exports only"),
        "Resources": { "Marker": { "Type": "AWS::SSM::Parameter", "Properties": { "Type": "String", "Value": name } } },
        "Outputs": outputs,
    });
    let stack = format!("aphex-cluster-{name}");
    aws(
        emulator,
        account,
        &[
            "cloudformation",
            "create-stack",
            "--stack-name",
            &stack,
            "--template-body",
            &template.to_string(),
        ],
    )
    .with_context(|| format!("creating the stand-in cluster stack {stack} in account {account}"))?;
    // The CLI's own waiter polls every 30 s; the emulator takes about one.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = stack_description(emulator, account, &stack)?
            .and_then(|s| s["StackStatus"].as_str().map(str::to_owned))
            .unwrap_or_default();
        match status.as_str() {
            "CREATE_COMPLETE" => break,
            s if s.ends_with("_IN_PROGRESS") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(500));
            }
            s => {
                bail!("the stand-in cluster stack {stack} in account {account} is `{s}`, not CREATE_COMPLETE")
            }
        }
    }
    eprintln!("xtask: cluster {name} stands in as stack {stack} (exports {prefix}*) in account {account}");
    Ok(())
}

/// The stack as `DescribeStacks` shows it, or `None` when it does not exist.
fn stack_description(emulator: &Emulator, account: &str, stack: &str) -> Result<Option<serde_json::Value>> {
    let text = match aws_output(
        emulator,
        account,
        &["cloudformation", "describe-stacks", "--stack-name", stack],
    ) {
        Ok(text) => text,
        Err(e) if format!("{e:#}").contains("does not exist") => return Ok(None),
        Err(e) => return Err(e),
    };
    let described: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing describe-stacks of {stack}"))?;
    Ok(described["Stacks"].get(0).cloned())
}

/// Prints the pipeline stack's outputs (the pipeline stage deployed it).
fn print_pipeline_stack(emulator: &Emulator, account: &str, stack: &str) -> Result<()> {
    let Some(described) = stack_description(emulator, account, stack)? else {
        println!();
        println!("== the pipeline stack {stack} was not deployed (see the pipeline stage's log)");
        return Ok(());
    };
    println!();
    println!(
        "== pipeline stack {stack} ({})",
        described["StackStatus"].as_str().unwrap_or_default()
    );
    for output in described["Outputs"].as_array().into_iter().flatten() {
        println!(
            "  {} = {}",
            output["OutputKey"].as_str().unwrap_or_default(),
            output["OutputValue"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

/// Runs the emulator venv's AWS CLI as `account`.
pub(crate) fn aws(emulator: &Emulator, account: &str, args: &[&str]) -> Result<()> {
    aws_output(emulator, account, args).map(drop)
}

/// Runs the emulator venv's AWS CLI as `account`; its standard output.
pub(crate) fn aws_output(emulator: &Emulator, account: &str, args: &[&str]) -> Result<String> {
    let cli = emulator.aws_cli();
    let output = aws_env(&mut Command::new(&cli), emulator)
        .args(args)
        .args(["--output", "json"])
        .env("AWS_ACCESS_KEY_ID", account)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", cli.display()))?;
    if !output.status.success() {
        bail!(
            "aws {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Points `cmd` at the emulator (endpoint, credentials, region), with
/// nothing from the user's own AWS setup that could send it elsewhere.
pub(crate) fn aws_env<'c>(cmd: &'c mut Command, emulator: &Emulator) -> &'c mut Command {
    for var in ["AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"] {
        cmd.env_remove(var);
    }
    cmd.envs(emulator.env())
        // The AWS CLI v1 reads the region from AWS_DEFAULT_REGION only.
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
}

/// The run folders of the quick start's pipeline (`aphex`, the default name).
fn run_dirs(runs: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(runs)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

/// `aphex run --local examples/quickstart --yes` from the repository root.
/// Its output goes straight to the terminal (not through a pipe that would
/// break if xtask died first on Ctrl-C, while aphex records the interruption).
fn run_aphex(root: &Path, aphex: &Path, emulator: &Emulator) -> Result<ExitStatus> {
    let args = ["run", "--local", crate::npm::QUICKSTART, "--yes"];
    eprintln!("xtask: aphex {}", args.join(" "));
    aws_env(&mut Command::new(aphex), emulator)
        .args(args)
        .current_dir(root)
        // The quick start's deps.js finds the packages through NODE_PATH
        // (the checkout aphex makes has no node_modules).
        .envs(crate::npm::node_env(root))
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("running {}", aphex.display()))
}

/// Prints every environment's captured outputs (`<env>/outputs.json`).
fn print_outputs(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    let mut envs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("outputs.json").is_file())
        .collect();
    // The config's order (dev before prod) is not on disk; names are stable.
    envs.sort();
    for env in envs {
        let file = env.join("outputs.json");
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        let outputs: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
        let name = env.file_name().unwrap_or_default().to_string_lossy();
        println!();
        println!("== stack outputs of {name}");
        for (stack, values) in outputs.as_object().into_iter().flatten() {
            for (key, value) in values.as_object().into_iter().flatten() {
                // CDK's generated export outputs are plumbing, not results.
                if key.starts_with("ExportsOutput") {
                    continue;
                }
                println!("  {stack}.{key} = {}", value.as_str().unwrap_or_default());
            }
        }
    }
    Ok(())
}
