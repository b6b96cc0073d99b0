//! `#[pipeline]`: keeps the function as it was written (calling it inside another pipeline
//! adds its steps there; outside any pipeline its steps run as plain functions) and registers
//! it so a pipeline binary can compile and run it by name, with typed, defaultable parameters.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, FnArg, ItemFn};

use crate::settings::{Level, Settings};
use crate::signature;

pub(crate) fn expand(attributes: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut settings = Settings::default();
    let mut dynamic = false;
    let parser = syn::meta::parser(|meta| {
        let name = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        if name == "dynamic" {
            if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                return Err(meta.error("`dynamic` takes no value"));
            }
            dynamic = true;
            Ok(())
        } else if settings.parse(&meta, Level::Pipeline)? {
            Ok(())
        } else {
            Err(meta.error(format!(
                "unknown `#[pipeline]` option `{name}`; supported: dynamic, cache = bool, cache(..), retry = n, retry(..), timeout = \"..\", isolated"
            )))
        }
    });
    syn::parse::Parser::parse2(parser, attributes)?;
    let mut function: ItemFn = syn::parse2(item)?;

    // `#[default(expr)]` on an argument: taken out here, since the compiler rejects unknown
    // attributes on parameters.
    let mut defaults: Vec<Option<Expr>> = Vec::new();
    for input in &mut function.sig.inputs {
        let FnArg::Typed(typed) = input else {
            defaults.push(None);
            continue;
        };
        let mut default = None;
        let mut kept = Vec::new();
        for attribute in typed.attrs.drain(..) {
            if attribute.path().is_ident("default") {
                if default.is_some() {
                    return Err(syn::Error::new(
                        attribute.span(),
                        "an argument has one `#[default(..)]`",
                    ));
                }
                default = Some(attribute.parse_args::<Expr>()?);
            } else {
                kept.push(attribute);
            }
        }
        typed.attrs = kept;
        defaults.push(default);
    }
    let arguments = signature::arguments(&function.sig, "pipeline")?;
    let returned = signature::returned(&function.sig.output)?;
    if !signature::is_unit(&returned.value) {
        return Err(syn::Error::new(
            function.sig.output.span(),
            "a pipeline returns `weft::Result<()>` or nothing; its steps' outputs are stored as artifacts",
        ));
    }

    let settings_tokens = settings.tokens();
    let name = &function.sig.ident;
    let name_text = name.to_string();
    let visibility = &function.vis;
    let child_visibility = signature::child_visibility(visibility);
    let def = format_ident!("__WEFT_PIPELINE_{}", name);
    let compile = signature::hidden("compile", name);
    let args = signature::hidden("args", name);

    let parameter_defs = arguments.iter().zip(&defaults).map(|(argument, default)| {
        let (text, ty) = (argument.name.to_string(), &argument.ty);
        let default = match default {
            Some(expr) => quote_spanned!(expr.span() => ::core::option::Option::Some(|| {
                let value: #ty = #expr;
                ::weft::__private::to_json(&value)
            })),
            None => quote!(::core::option::Option::None),
        };
        quote_spanned!(ty.span() => ::weft::__private::ParamDef {
            name: #text,
            type_name: ::core::any::type_name::<#ty>,
            default: #default,
            check: ::weft::__private::check_pipeline_parameter::<#ty>,
        })
    });
    let names: Vec<_> = arguments.iter().map(|a| &a.name).collect();
    let texts: Vec<String> = arguments.iter().map(|a| a.name.to_string()).collect();
    let types: Vec<_> = arguments.iter().map(|a| &a.ty).collect();
    let call = if returned.fallible {
        quote!(#name(#(#names),*).map_err(::weft::Error::from))
    } else {
        quote!({ #name(#(#names),*); ::core::result::Result::Ok(()) })
    };
    let module_doc = format!(
        "The registration of pipeline [`{name_text}`](fn@{name_text}) and typed arguments for running it."
    );

    Ok(quote! {
        #function

        #[doc(hidden)]
        fn #compile(__weft_parameters: &::weft::__private::Parameters) -> ::weft::Result<()> {
            #(let #names: #types = __weft_parameters.get(#texts)?;)*
            #call
        }

        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        #visibility static #def: ::weft::__private::PipelineDef = ::weft::__private::PipelineDef {
            name: #name_text,
            parameters: &[#(#parameter_defs),*],
            settings: #settings_tokens,
            dynamic: #dynamic,
            compile: #compile,
        };

        ::weft::__private::inventory::submit! {
            ::weft::__private::PipelineRegistration(&#def)
        }

        #[doc(hidden)]
        #[allow(clippy::too_many_arguments)]
        #visibility fn #args(#(#names: #types),*) -> ::weft::PipelineCall {
            let mut __weft_call = ::weft::PipelineCall::new(&#def);
            #(__weft_call = __weft_call.param(#texts, &#names);)*
            __weft_call
        }

        #[doc = #module_doc]
        #[allow(unused_imports)]
        #visibility mod #name {
            /// The pipeline's description, as registered with weft.
            #child_visibility use super::#def as PIPELINE;
            /// Arguments for a run of this pipeline, typed as its function declares them.
            #child_visibility use super::#args as args;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_takes_no_value_and_unknown_options_are_refused() {
        let dynamic = expand(
            quote!(dynamic),
            quote!(
                fn p() {}
            ),
        )
        .unwrap()
        .to_string();
        assert!(dynamic.contains("dynamic : true"), "{dynamic}");
        let error = expand(
            quote!(dynamic = true),
            quote!(
                fn p() {}
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("`dynamic` takes no value"), "{error}");
        let error = expand(
            quote!(retries = 2),
            quote!(
                fn p() {}
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("unknown `#[pipeline]` option `retries`"),
            "{error}"
        );
    }

    #[test]
    fn pipelines_return_nothing_but_errors() {
        let error = expand(
            quote!(),
            quote!(
                fn p() -> u32 {
                    1
                }
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("returns `weft::Result<()>` or nothing"),
            "{error}"
        );
        assert!(
            expand(
                quote!(),
                quote!(
                    fn p() -> weft::Result<()> {
                        Ok(())
                    }
                )
            )
            .is_ok()
        );
    }

    #[test]
    fn defaults_are_taken_off_the_arguments() {
        let tokens = expand(
            quote!(),
            quote!(
                fn p(#[default(150)] limit: usize) {}
            ),
        )
        .unwrap()
        .to_string();
        assert!(tokens.contains("fn p (limit : usize)"), "{tokens}");
        let error = expand(
            quote!(),
            quote!(
                fn p(
                    #[default(1)]
                    #[default(2)]
                    x: u8,
                ) {
                }
            ),
        )
        .unwrap_err();
        assert!(error.to_string().contains("one `#[default(..)]`"));
    }
}
