//! What the commands that work on a pipeline's cluster share: the
//! `--namespace`/`--context` flags (as kubectl's), the connection they
//! name, and the `-o/--output` formats of the objects they print.

use std::path::PathBuf;

use aphex_config::Config;
use aphex_k8s::Connection;
use aphex_k8s::workflows::{WorkflowError, Workflows};
use serde::Serialize;

use crate::exit::CliError;
use crate::out::Out;

/// Where on the cluster (kubectl's flags).
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// The pipeline's namespace (default: the config's `pipeline.namespace`).
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// The kubeconfig context (default: the current context).
    #[arg(long, value_name = "CONTEXT")]
    pub context: Option<String>,
}

/// The configuration a cluster command reads (the pipeline's name and
/// namespace).
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// The configuration file (a directory means its aphex-config.yaml).
    #[arg(
        long = "config",
        short = 'f',
        value_name = "PATH",
        default_value = "aphex-config.yaml"
    )]
    pub path: PathBuf,
}

/// `-o/--output`: how objects are printed (human tables by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// The table with more columns.
    Wide,
    /// The objects as YAML.
    Yaml,
    /// The objects as JSON.
    Json,
}

/// `value` as YAML or JSON text.
pub fn object_text(format: Output, value: &impl Serialize) -> Result<String, CliError> {
    let value = serde_json::to_value(value).expect("views serialize");
    Ok(match format {
        Output::Yaml => aphex_template::yaml::to_yaml(&value)?,
        _ => format!(
            "{}\n",
            serde_json::to_string_pretty(&value).expect("JSON values serialize")
        ),
    })
}

/// Prints `value` as YAML or JSON.
pub fn print_object(out: &mut Out, format: Output, value: &impl Serialize) -> Result<(), CliError> {
    out.write_str(&object_text(format, value)?)
}

/// The kubeconfig's cluster; a usage error saying what to set when there
/// is none.
pub async fn connect(args: &ClusterArgs) -> Result<Connection, CliError> {
    aphex_k8s::connect(args.context.as_deref()).await.map_err(|e| {
        let help = match &args.context {
            Some(c) => {
                format!("check that context `{c}` exists in the kubeconfig (`kubectl config get-contexts`)")
            }
            None => "set KUBECONFIG (or ~/.kube/config) to the cluster's kubeconfig".to_owned(),
        };
        CliError::usage(format!("no Kubernetes client: {e}")).help(help)
    })
}

/// The namespace the flags or the config name.
pub fn namespace(args: &ClusterArgs, config: &Config) -> String {
    args.namespace
        .clone()
        .unwrap_or_else(|| config.settings().namespace().to_owned())
}

/// The Workflows of the pipeline's namespace.
pub async fn workflows(args: &ClusterArgs, config: &Config) -> Result<(Connection, Workflows), CliError> {
    let connection = connect(args).await?;
    let workflows = connection
        .workflows(&namespace(args, config))
        .map_err(|e| CliError::usage(format!("no Kubernetes client: {e}")))?;
    Ok((connection, workflows))
}

/// Who the person running the command is: `given` (`--as`) or the
/// kubeconfig context's user; a usage error when neither names anyone.
pub fn who(given: Option<&str>, connection: Option<&Connection>) -> Result<String, CliError> {
    given
        .map(str::to_owned)
        .or_else(|| connection.and_then(|c| c.user.clone()))
        .ok_or_else(|| {
            CliError::usage("cannot tell who you are: the kubeconfig's context names no user")
                .help("pass --as NAME")
        })
}

impl From<WorkflowError> for CliError {
    fn from(e: WorkflowError) -> Self {
        CliError::failure(e)
    }
}
