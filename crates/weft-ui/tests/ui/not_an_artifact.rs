use weft::prelude::*;

struct Opaque {
    handle: std::fs::File,
}

#[step]
fn open(path: String) -> Opaque {
    Opaque { handle: std::fs::File::open(path).unwrap() }
}

fn main() {}
