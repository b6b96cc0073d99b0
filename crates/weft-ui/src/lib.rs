//! Nothing but tests: `tests/ui.rs` compiles every `tests/ui/*.rs` against `weft` and checks
//! the errors against the `.stderr` beside it.
