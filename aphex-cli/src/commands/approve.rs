//! `aphex approve RUN --env ENV [--as NAME] [--reject]`: decides the
//! approval gate `approve-ENV` of a run the way `argo resume`/`argo stop`
//! and `argo node set` do (`aphex_k8s::workflows::Workflows::decide`),
//! naming who decided on the gate's `approved-by` output, from where the
//! deploy after it records it.

use aphex_k8s::workflows::Decision;
use aphex_template::submit::check_approver;

use super::cluster::{ClusterArgs, ConfigArg};
use crate::exit::{CliError, Exit};
use crate::out::Out;

/// Arguments of `aphex approve`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    aphex approve shop-7x2kq --env prod\n  \
    aphex approve shop-7x2kq --env prod --reject --message 'not during the sale'\n\n\
    Who approved is the kubeconfig context's user unless --as names someone; it is kept on the\n\
    gate, in the deploy's run record and in `aphex history`.\n\n\
    Exit status: 0 decided, 1 no such run or gate, the gate is not waiting, or the cluster\n\
    refused, 2 usage or setup error.")]
pub struct Args {
    /// The run (its Workflow's name, as `aphex status` lists it).
    pub run: String,
    /// The environment whose gate to decide (gate `approve-ENV`).
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// Who approves (default: the kubeconfig context's user).
    #[arg(long = "as", value_name = "NAME")]
    pub as_: Option<String>,
    /// Reject instead: the run stops at the gate.
    #[arg(long)]
    pub reject: bool,
    /// Why (kept on the gate with the rejection).
    #[arg(long, value_name = "TEXT", requires = "reject")]
    pub message: Option<String>,
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Runs `aphex approve`.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let config = super::validate::load_config(&args.config.path)?;
    if config.environment(&args.env).is_none() {
        let names: Vec<&str> = config.environments.iter().map(|e| e.name.as_str()).collect();
        return Err(
            CliError::usage(format!("--env {}: no such environment", args.env))
                .help(format!("the environments are: {}", names.join(", "))),
        );
    }
    super::runtime()?.block_on(async {
        let (connection, workflows) = super::cluster::workflows(&args.cluster, &config).await?;
        let who = super::cluster::who(args.as_.as_deref(), Some(&connection))?;
        check_approver(&who)
            .map_err(|e| CliError::usage(e).help("pass --as NAME (your login or e-mail address)"))?;
        let decision = if args.reject {
            Decision::Reject(args.message.clone().unwrap_or_else(|| "rejected".to_owned()))
        } else {
            Decision::Approve
        };
        let gate = format!("approve-{}", args.env);
        let now = aphex_stages::time::now_rfc3339();
        workflows.decide(&args.run, &gate, &decision, &who, &now).await?;
        let verb = if args.reject { "rejected" } else { "approved" };
        let mut out = Out::lock();
        writeln!(out, "{verb} {} of run {} as {who}", args.env, args.run)?;
        Ok(Exit::Ok)
    })
}
