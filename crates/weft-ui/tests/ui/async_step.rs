use weft::prelude::*;

#[step]
async fn fetch(url: String) -> String {
    url
}

fn main() {}
