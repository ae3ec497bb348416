//! `aphex approve RUN --env ENV [--as NAME] [--reject]`: decides the gate
//! of environment ENV that waits in a run, its approval gate `approve-ENV`
//! or its risk gate `risk-ENV`, the way `argo resume`/`argo stop` and `argo
//! node set` do (`aphex_k8s::workflows::Workflows::decide`), naming who
//! decided on the gate's `approved-by` output, from where the deploy after
//! it (for a risk gate, the `resume` task of its `gated-deploy` DAG)
//! records it.

use aphex_k8s::run_status::GateKind;
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
    It decides the gate of ENV that waits: approve-ENV before the deploy (approval: manual), or\n\
    risk-ENV where the deploy stopped at risky changes (riskGates: approve). Rejecting either stops\n\
    the run at the gate; a risk gate's deploy is then recorded as failed, nothing past it deployed.\n\n\
    Who approved is the kubeconfig context's user unless --as names someone; it is kept on the\n\
    gate, in the deploy's run record and in `aphex history`.\n\n\
    Exit status: 0 decided, 1 no such run or gate, the gate is not waiting, or the cluster\n\
    refused, 2 usage or setup error.")]
pub struct Args {
    /// The run (its Workflow's name, as `aphex status` lists it).
    pub run: String,
    /// The environment whose waiting gate to decide (`approve-ENV` or `risk-ENV`).
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
        let now = aphex_stages::time::now_rfc3339();
        let gate = workflows
            .decide(&args.run, &args.env, &decision, &who, &now)
            .await?;
        let verb = if args.reject { "rejected" } else { "approved" };
        let what = match gate.gate_of() {
            Some((GateKind::Risk, _)) => format!("the risky changes of {}", args.env),
            _ => args.env.clone(),
        };
        let mut out = Out::lock();
        writeln!(out, "{verb} {what} of run {} as {who}", args.run)?;
        Ok(Exit::Ok)
    })
}
