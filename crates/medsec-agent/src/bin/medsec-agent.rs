//! `medsec-agent`: the device agent on its own, without the server's dependencies (the same
//! commands as `medsec agent`).

use clap::Parser;

/// The medsec device agent.
#[derive(Debug, Parser)]
#[command(name = "medsec-agent", version)]
struct Cli {
    #[command(subcommand)]
    command: medsec_agent::cli::AgentCommand,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match medsec_agent::cli::run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
