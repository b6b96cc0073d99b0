//! The macros of weft: `#[step]`, `#[pipeline]` and `#[derive(Artifact)]`.
//!
//! This crate is a thin shim: each entry point parses its input and hands it to a normal,
//! unit-tested module (`step`, `pipeline`, `artifact`) that returns tokens or a spanned
//! error. Generated code refers to `::weft` only (mostly `::weft::__private`), so users depend
//! on the `weft` crate alone.

use proc_macro::TokenStream;

mod artifact;
mod pipeline;
mod serde;
mod settings;
mod signature;
mod step;

/// Marks a function as a weft step. See the `weft` crate's documentation.
#[proc_macro_attribute]
pub fn step(attributes: TokenStream, item: TokenStream) -> TokenStream {
    step::expand(attributes.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Marks a function as a weft pipeline. See the `weft` crate's documentation.
#[proc_macro_attribute]
pub fn pipeline(attributes: TokenStream, item: TokenStream) -> TokenStream {
    pipeline::expand(attributes.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Makes a serde type a weft artifact. See the `weft` crate's documentation.
#[proc_macro_derive(Artifact, attributes(artifact))]
pub fn derive_artifact(item: TokenStream) -> TokenStream {
    artifact::expand(item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// serde's `Serialize`, derived through `weft` (a crate that depends on `weft` alone has no
/// `serde` to name). Takes every `#[serde(...)]` attribute serde's derive takes.
#[proc_macro_derive(Serialize, attributes(serde))]
pub fn derive_serialize(item: TokenStream) -> TokenStream {
    serde::expand(item.into(), serde::Trait::Serialize)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// serde's `Deserialize`, derived through `weft` (see [`macro@Serialize`]). Types with
/// lifetime parameters (borrowed data) need serde's own derive.
#[proc_macro_derive(Deserialize, attributes(serde))]
pub fn derive_deserialize(item: TokenStream) -> TokenStream {
    serde::expand(item.into(), serde::Trait::Deserialize)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
