//! Tell three wine cultivars apart from a chemical analysis, with the crates a Rust ML engineer
//! uses: the CSV read into an Arrow table, turned into an `ndarray` matrix, a multinomial
//! logistic regression trained with `linfa`, its weights saved as safetensors, and a metrics
//! table (Parquet) and the confusion matrix (PNG) to look at.
//!
//! ```text
//! cargo run --release --features ml --example wine -- run training
//! cargo run --release --features ml --example wine -- run training --param alpha=0.1
//! cargo run --release --features ml --example wine -- artifacts show wine-metrics:latest
//! ```

mod pipeline;

fn main() -> std::process::ExitCode {
    weft::main()
}
