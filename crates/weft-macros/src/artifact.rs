//! `#[derive(Artifact)]`: stores a serde type as JSON (default), as MessagePack
//! (`#[artifact(binary)]`) or with a materializer of the user's own
//! (`#[artifact(materializer = MyMaterializer)]`); `#[artifact(kind = "model")]` sets the
//! artifact type.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, LitStr, Path};

enum Format {
    Json,
    Binary,
    Custom(Path),
}

pub(crate) fn expand(item: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(item)?;
    let mut format = Format::Json;
    let mut kind = None;
    for attribute in input.attrs.iter().filter(|a| a.path().is_ident("artifact")) {
        attribute.parse_nested_meta(|meta| {
            if meta.path.is_ident("binary") {
                format = Format::Binary;
            } else if meta.path.is_ident("json") {
                format = Format::Json;
            } else if meta.path.is_ident("materializer") {
                format = Format::Custom(meta.value()?.parse()?);
            } else if meta.path.is_ident("kind") {
                let value: LitStr = meta.value()?.parse()?;
                kind = Some(match value.value().as_str() {
                    "data" => quote!(Data),
                    "model" => quote!(Model),
                    "data_analysis" => quote!(DataAnalysis),
                    other => {
                        return Err(syn::Error::new(value.span(), format!("unknown artifact kind `{other}`; use data, model or data_analysis")));
                    }
                });
            } else {
                return Err(meta.error("unknown `#[artifact]` option; supported: `json`, `binary`, `materializer = Type`, `kind = \"data\" | \"model\" | \"data_analysis\"`"));
            }
            Ok(())
        })?;
    }
    let name = &input.ident;
    let mut generics = input.generics.clone();
    let serde = !matches!(format, Format::Custom(_));
    for parameter in generics.type_params_mut() {
        parameter
            .bounds
            .push(syn::parse_quote!(::core::marker::Send));
        parameter.bounds.push(syn::parse_quote!('static));
        if serde {
            parameter
                .bounds
                .push(syn::parse_quote!(::weft::__private::serde::Serialize));
            parameter.bounds.push(syn::parse_quote!(
                ::weft::__private::serde::de::DeserializeOwned
            ));
        }
    }
    let (implementation, type_generics, where_clause) = generics.split_for_impl();
    let materializer = match &format {
        Format::Json => quote!(::weft::materializers::JsonFormat),
        Format::Binary => quote!(::weft::materializers::MsgPackFormat),
        Format::Custom(path) => quote!(#path),
    };
    let kind = kind.map(
        |kind| quote!(const ARTIFACT_TYPE: ::weft::ArtifactType = ::weft::ArtifactType::#kind;),
    );
    let serde_value = serde.then(|| {
        quote!(impl #implementation ::weft::materializers::SerdeValue for #name #type_generics #where_clause {
            type VecFormat = ::weft::materializers::JsonFormat;
        })
    });
    Ok(quote! {
        impl #implementation ::weft::Artifact for #name #type_generics #where_clause {
            type Materializer = #materializer;
            #kind
        }
        #serde_value
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_kinds() {
        let text = |attributes: TokenStream| {
            expand(quote!(#attributes struct Rows { x: Vec<f64> })).map(|t| t.to_string())
        };
        assert!(text(quote!()).unwrap().contains("JsonFormat"));
        let binary = text(quote!(#[artifact(binary, kind = "model")])).unwrap();
        assert!(binary.contains("MsgPackFormat") && binary.contains("ArtifactType :: Model"));
        let custom = text(quote!(#[artifact(materializer = my::Npy)])).unwrap();
        assert!(custom.contains("my :: Npy") && !custom.contains("SerdeValue"));
        assert!(
            text(quote!(#[artifact(kind = "cake")]))
                .unwrap_err()
                .to_string()
                .contains("unknown artifact kind")
        );
        assert!(
            text(quote!(#[artifact(zip)]))
                .unwrap_err()
                .to_string()
                .contains("unknown `#[artifact]` option")
        );
    }
}
