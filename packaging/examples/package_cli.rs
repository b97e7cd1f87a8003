//! The library behind `genrun package`, for benchmarking without the genrun binary:
//! `package_cli WORKSPACE OUT_DIR [tar.zst,tar.gz]`. Prints the same summary.

use std::path::PathBuf;
use std::process::ExitCode;

use genrun_packaging::{package, render_summary, Format, PackageOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(ws), Some(out)) = (args.first(), args.get(1)) else {
        eprintln!("usage: package_cli WORKSPACE OUT_DIR [FORMATS]");
        return ExitCode::from(64);
    };
    let mut opts = PackageOptions::new(PathBuf::from(ws), PathBuf::from(out));
    if let Some(f) = args.get(2) {
        let parsed: Result<Vec<Format>, _> = f.split(',').map(str::parse).collect();
        match parsed {
            Ok(v) => opts.formats = v,
            Err(e) => {
                eprintln!("package_cli: {e}");
                return ExitCode::from(64);
            }
        }
    }
    match package(&opts) {
        Ok(r) => {
            print!("{}", render_summary(&r));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("package_cli: {e}");
            ExitCode::from(if e.is_input_error() { 65 } else { 74 })
        }
    }
}
