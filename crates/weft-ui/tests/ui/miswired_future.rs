use weft::prelude::*;

#[step]
fn name() -> String {
    "iris".into()
}

#[step]
fn double(x: u32) -> u32 {
    x * 2
}

#[pipeline(dynamic)]
fn sweep() -> weft::Result<()> {
    let text = name::submit();
    double::submit(&text).wait()?;
    double::map(vec![text])?;
    Ok(())
}

fn main() {}
