//! The terminal view on a scripted run: `cargo run -p genrun-progress --example pretty_demo`
//! (`-- json` for the JSON lines instead). Useful for README samples and for eyeballing the view.

#[path = "../tests/progress/demo.rs"]
mod demo;

use std::time::Duration;

use genrun_progress::{LogFormat, Progress, ProgressConfig, Redactor};

#[tokio::main]
async fn main() {
    let mut cfg = ProgressConfig::new("req-demo");
    cfg.format = if std::env::args().any(|a| a == "json") {
        LogFormat::Json
    } else {
        LogFormat::Pretty
    };
    cfg.pretty_title = "genrun demo".into();
    let p = Progress::start(cfg, Redactor::new(Vec::<String>::new()));
    let pace = || std::thread::sleep(Duration::from_millis(300));
    demo::first_half(&p, &pace);
    std::thread::sleep(Duration::from_secs(1));
    demo::second_half(&p, &pace);
    p.finish(Duration::from_secs(5)).await;
}
