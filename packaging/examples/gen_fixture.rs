//! Generates the benchmark fixture: `gen_fixture DIR [NODE_MODULES_FILES] [SEED]` (defaults 10000, 1).
//!
//! Used by bench/package.sh; see `genrun_packaging::fixture` for what the tree contains.

use std::path::PathBuf;
use std::process::ExitCode;

use genrun_packaging::fixture::{generate, FixtureSpec};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!("usage: gen_fixture DIR [NODE_MODULES_FILES] [SEED]");
        return ExitCode::from(64);
    };
    let n = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let seed = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(1);
    match generate(
        &dir,
        &FixtureSpec {
            node_modules_files: n,
            seed,
        },
    ) {
        Ok(st) => {
            println!("{st:?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen_fixture: {}: {e}", dir.display());
            ExitCode::from(74)
        }
    }
}
