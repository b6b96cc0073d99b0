//! The artifact crate's integration tests, one binary: each module a subject (the store
//! conformance suite, materializers per format, files read back by Python).

mod common;

mod arrays;
mod candle;
mod conformance;
mod frames;
mod images;
mod python;
mod store;
mod tables;
mod tensors;
