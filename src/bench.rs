//! `revledger bench …` (being written).

use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum BenchCommand {}

pub async fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {}
}
