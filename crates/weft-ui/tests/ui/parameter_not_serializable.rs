use weft::prelude::*;

#[derive(Clone, Deserialize)]
struct Secret {
    value: String,
}

#[step]
fn reveal(secret: Secret) -> String {
    secret.value
}

#[pipeline]
fn leaky() -> weft::Result<()> {
    reveal(Secret { value: "x".into() })?;
    Ok(())
}

fn main() {}
