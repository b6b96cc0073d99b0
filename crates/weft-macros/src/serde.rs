//! `#[derive(Serialize, Deserialize)]` through `weft`, so that a crate depending on `weft`
//! alone can derive serde's traits.
//!
//! serde's own derives name the `serde` crate, which such a crate does not have; their
//! `#[serde(crate = "...")]` option fixes that, but a derive cannot add an attribute to the
//! item it is given. So these derives write a copy of the type (same fields, same `serde`
//! attributes) with `#[serde(crate = "::weft::__private::serde", remote = "Type")]`, derive
//! serde's trait on the copy, and implement the trait for the type by delegating to it. The
//! copy is what serde's remote derive was made for; nothing is converted at run time.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{Attribute, Data, DeriveInput, Fields};

/// Which trait is derived.
#[derive(Clone, Copy)]
pub(crate) enum Trait {
    Serialize,
    Deserialize,
}

pub(crate) fn expand(item: TokenStream, which: Trait) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(item)?;
    if let (Trait::Deserialize, Some(lifetime)) = (which, input.generics.lifetimes().next()) {
        return Err(syn::Error::new_spanned(
            lifetime,
            "weft's `Deserialize` derive does not take lifetime parameters; add `serde` to \
             your dependencies and derive `serde::Deserialize` for borrowed data",
        ));
    }
    let name = &input.ident;
    let shadow = shadow(&input);
    let shadow_name = &shadow.ident;
    let serde = quote!(::weft::__private::serde);
    let (_, type_generics, _) = input.generics.split_for_impl();
    let mut bounded = input.generics.clone();
    for parameter in bounded.type_params_mut() {
        parameter.bounds.push(match which {
            Trait::Serialize => syn::parse_quote!(#serde::Serialize),
            Trait::Deserialize => syn::parse_quote!(#serde::Deserialize<'de>),
        });
    }
    let implementation = match which {
        Trait::Serialize => {
            let (impl_generics, _, where_clause) = bounded.split_for_impl();
            quote! {
                impl #impl_generics #serde::Serialize for #name #type_generics #where_clause {
                    fn serialize<__S>(&self, serializer: __S) -> ::core::result::Result<__S::Ok, __S::Error>
                    where
                        __S: #serde::Serializer,
                    {
                        #shadow_name::serialize(self, serializer)
                    }
                }
            }
        }
        Trait::Deserialize => {
            bounded.params.insert(0, syn::parse_quote!('de));
            let (impl_generics, _, where_clause) = bounded.split_for_impl();
            quote! {
                impl #impl_generics #serde::Deserialize<'de> for #name #type_generics #where_clause {
                    fn deserialize<__D>(deserializer: __D) -> ::core::result::Result<Self, __D::Error>
                    where
                        __D: #serde::Deserializer<'de>,
                    {
                        #shadow_name::deserialize(deserializer)
                    }
                }
            }
        }
    };
    let derive = match which {
        Trait::Serialize => quote!(#serde::Serialize),
        Trait::Deserialize => quote!(#serde::Deserialize),
    };
    let remote = name.to_string();
    Ok(quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code, clippy::all)]
        const _: () = {
            #[derive(#derive)]
            #[serde(crate = "::weft::__private::serde", remote = #remote)]
            #shadow
            #implementation
        };
    })
}

/// The type again under another name, keeping only its `serde` attributes.
fn shadow(input: &DeriveInput) -> DeriveInput {
    let mut shadow = input.clone();
    shadow.ident = format_ident!("__WeftSerde{}", input.ident);
    shadow.vis = syn::Visibility::Inherited;
    keep_serde(&mut shadow.attrs);
    let keep_fields = |fields: &mut Fields| {
        for field in fields.iter_mut() {
            keep_serde(&mut field.attrs);
            field.vis = syn::Visibility::Inherited;
        }
    };
    match &mut shadow.data {
        Data::Struct(data) => keep_fields(&mut data.fields),
        Data::Enum(data) => {
            for variant in &mut data.variants {
                keep_serde(&mut variant.attrs);
                keep_fields(&mut variant.fields);
            }
        }
        Data::Union(_) => {}
    }
    shadow
}

fn keep_serde(attributes: &mut Vec<Attribute>) {
    attributes.retain(|attribute| attribute.path().is_ident("serde"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_keeps_fields_and_serde_attributes_only() {
        let input: DeriveInput = syn::parse_quote! {
            /// Docs.
            #[derive(Clone)]
            #[serde(rename_all = "camelCase")]
            pub struct Samples<T> {
                #[serde(default)]
                #[allow(unused)]
                pub features: Vec<T>,
                labels: Vec<usize>,
            }
        };
        let copy = shadow(&input);
        let expected: DeriveInput = syn::parse_quote! {
            #[serde(rename_all = "camelCase")]
            struct __WeftSerdeSamples<T> {
                #[serde(default)]
                features: Vec<T>,
                labels: Vec<usize>,
            }
        };
        assert_eq!(copy, expected);
    }

    #[test]
    fn borrowed_data_is_refused_with_advice() {
        let error = expand(
            quote!(
                struct View<'a> {
                    name: &'a str,
                }
            ),
            Trait::Deserialize,
        )
        .unwrap_err();
        assert!(error.to_string().contains("derive `serde::Deserialize`"));
        assert!(
            expand(
                quote!(
                    struct View<'a> {
                        name: &'a str,
                    }
                ),
                Trait::Serialize
            )
            .is_ok()
        );
    }
}
