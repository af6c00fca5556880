//! `squall list`: the topologies of a namespace, like streamparse's `sparse list`.

use kube::api::ListParams;

use super::{age, ClusterArgs, Remote};
use crate::table::Grid;

#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
}

pub async fn run(args: ListArgs) -> anyhow::Result<()> {
    let remote = Remote::connect(&args.cluster, false).await?;
    let list = remote
        .topologies()
        .list(&ListParams::default())
        .await
        .map_err(|e| remote.error(e, None))?;
    if list.items.is_empty() {
        println!("no topologies in namespace {}", remote.namespace);
        return Ok(());
    }
    let mut grid = Grid::new(&["NAME", "PHASE", "WORKERS", "GENERATION", "AGE"], 2);
    for t in &list.items {
        let status = t.status.as_ref();
        grid.row(vec![
            t.metadata.name.clone().unwrap_or_default(),
            status.map_or("-", |s| s.phase.as_str()).to_owned(),
            status.map_or("-".to_owned(), |s| {
                format!("{}/{}", s.ready_workers, s.desired_workers)
            }),
            t.metadata.generation.map_or("-".to_owned(), |g| g.to_string()),
            age(t.metadata.creation_timestamp.as_ref()),
        ]);
    }
    print!("{}", grid.render());
    Ok(())
}
