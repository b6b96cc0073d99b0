//! weft's quickstart: classify the iris flowers two ways, in parallel, and compare; or sweep
//! learning rates with a dynamic pipeline.
//!
//! ```text
//! cargo run --release --example quickstart -- run training
//! cargo run --release --example quickstart -- run training --param learning_rate=0.5 --param epochs=500
//! cargo run --release --example quickstart -- run sweep --param 'learning_rates=[0.05, 0.5]'
//! cargo run --release --example quickstart -- list
//! ```

mod pipeline;

fn main() -> std::process::ExitCode {
    weft::main()
}
