use weft::prelude::*;

#[step]
fn one() -> u8 {
    1
}

#[pipeline(dynamic)]
fn sweep() -> weft::Result<()> {
    one()?;
    Ok(())
}

fn main() {}
