//! genrun: the in-container supervisor for an app-generating coding agent.
//!
//! `main` parses the command line and hands each subcommand to its function in [`commands`]; each returns
//! the process exit code from the contract in [`exit`].

mod cli;
mod commands;
mod config;
mod exit;
mod result;
mod run;
mod summary;
mod supervise;

use clap::Parser;

fn main() {
    let code = match cli::Cli::try_parse() {
        Ok(cli) => commands::dispatch(cli),
        Err(e) => commands::usage_error(e),
    };
    std::process::exit(code)
}
