//! One module per subcommand.

pub mod bootstrap;
pub mod diff;
pub mod history;
pub mod init;
pub mod plan;
pub mod render;
pub mod run;
pub mod schema;
pub mod validate;
pub mod webhook;

use crate::exit::Exit;

/// The async runtime of a command that talks to AWS or a cluster; a
/// usage-class exit, said on stderr, when it cannot start.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Exit> {
    tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("error: starting the async runtime: {e}");
        Exit::Usage
    })
}

/// The Kubernetes applier of the current kubeconfig; a usage-class exit,
/// saying what to set, when no client can be made.
pub(crate) async fn kube_applier() -> Result<aphex_k8s::KubeApplier, Exit> {
    aphex_k8s::KubeApplier::infer().await.map_err(|e| {
        eprintln!(
            "error: no Kubernetes client: {e}\n  = help: set KUBECONFIG (or ~/.kube/config) to the cluster's kubeconfig"
        );
        Exit::Usage
    })
}
