//! End-to-end tests of weft through its binaries. The binaries are:
//!
//! - `e2e-pipelines`: a pipeline binary with the quickstart's pipeline and a few pipelines
//!   made to fail, to race or to take typed parameters;
//! - `e2e-weft`: the `weft` command, built from the same library as the real one.
//!
//! The tests in `tests/` run them as processes, the way users do.
