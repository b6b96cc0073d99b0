//! Compile-fail tests: signatures weft cannot support and mis-wired pipelines fail `cargo
//! build` with the messages pinned in `tests/ui/*.stderr` (refresh them with
//! `TRYBUILD=overwrite cargo test -p weft-ui --test ui`).

#[test]
fn mistakes_do_not_compile() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
