//! `raftfs restore`: seed a member of a new cluster from a backup (docs/backup.md).
//!
//! The backup is verified first (checksum, layout, store image): a corrupt file is refused
//! before anything is written. The cluster file's member list becomes the new cluster's
//! configuration; the data directory must be empty or absent, so a restore never overwrites a
//! member's data. Every member restored from the same file starts with the same store at the
//! same log position, and they elect a leader as any new cluster does.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use server::backup::{self, Backup};
use server::config::ClusterFile;

/// Arguments of `raftfs restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup (from `raftfs admin snapshot save`).
    pub file: PathBuf,
    /// The new member's data directory: must be empty or absent.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// The new cluster's file: its member list becomes the configuration.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The member of the cluster file this data directory is for.
    #[arg(long, value_name = "ID")]
    pub id: u64,
}

/// Runs `raftfs restore`, printing what was restored on stdout.
pub fn run(args: RestoreArgs) -> anyhow::Result<()> {
    let file = ClusterFile::load(&args.config)?;
    anyhow::ensure!(
        file.member(args.id).is_some(),
        "--id {} is not a member of {}",
        args.id,
        args.config.display()
    );
    let backup = Backup::read(&args.file)?;
    backup::restore(&backup, &args.data_dir, &file.member)
        .with_context(|| format!("cannot restore into {}", args.data_dir.display()))?;
    println!(
        "restored member {} into {}: {}; start it with: raftfs serve --config {} --id {} \
         --data-dir {}",
        args.id,
        args.data_dir.display(),
        backup.summary(),
        args.config.display(),
        args.id,
        args.data_dir.display()
    );
    Ok(())
}
