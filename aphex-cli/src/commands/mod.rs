//! One module per subcommand.

pub mod approve;
pub mod bootstrap;
pub mod cluster;
pub mod destroy;
pub mod diff;
pub mod history;
pub mod init;
pub mod logs;
pub mod plan;
pub mod render;
pub mod run;
pub mod schema;
pub mod status;
pub mod trigger;
pub mod validate;
pub mod webhook;

use crate::exit::CliError;

/// The async runtime of a command that talks to AWS or a cluster; a
/// usage-class error when it cannot start.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Runtime::new().map_err(|e| CliError::usage(format!("starting the async runtime: {e}")))
}

/// The Kubernetes applier of the current kubeconfig; a usage-class error,
/// saying what to set, when no client can be made.
pub(crate) async fn kube_applier() -> Result<aphex_k8s::KubeApplier, CliError> {
    aphex_k8s::KubeApplier::infer().await.map_err(|e| {
        CliError::usage(format!("no Kubernetes client: {e}"))
            .help("set KUBECONFIG (or ~/.kube/config) to the cluster's kubeconfig")
    })
}
