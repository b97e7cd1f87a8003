//! Stand-alone launcher of the scripted agent, so this crate's own tests can run it as a real process
//! (the product reaches the same code through `genrun scripted-agent`).

fn main() {
    std::process::exit(genrun_agent::scripted::main(
        std::env::args_os().skip(1).collect(),
    ));
}
