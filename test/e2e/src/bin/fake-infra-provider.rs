//! The test infrastructure stand-in (`TestCluster`, `TestMachine`) as a process, for the local run
//! (`hack/demo.sh`): marks clusters provisioned, and machines once their Machine has bootstrap
//! data. Not a real infrastructure provider: nothing is created anywhere.

use clap::Parser;

/// Provision TestClusters and TestMachines of one namespace (cluster from $KUBECONFIG).
#[derive(Parser)]
struct Args {
    /// Namespace to watch.
    #[arg(long)]
    namespace: String,
    /// Also create a Node with the machine's provider ID in the workload cluster (through
    /// `<cluster>-kubeconfig`), as the machine's kubelet would.
    #[arg(long)]
    register_nodes: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = test_support::client().await?;
    let options = e2e::infra::RunOptions {
        register_nodes: args.register_nodes,
    };
    tokio::select! {
        () = e2e::infra::run(client, args.namespace, options) => {}
        result = tokio::signal::ctrl_c() => result?,
    }
    Ok(())
}
