//! `#[step]`: keeps the function callable as it was written (as `<step>::plain`) and puts a
//! wrapper under its name that records an invocation inside a pipeline and runs the body
//! outside one.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ItemFn, LitStr, Type};

use crate::settings::{Level, Settings};
use crate::signature::{self, Argument, Returned};

/// One output: its name and, optionally, the artifact name it is saved under.
#[derive(Debug, PartialEq)]
pub(crate) struct Output {
    pub(crate) name: String,
    pub(crate) artifact_name: Option<String>,
    pub(crate) ty: Type,
}

/// `outputs(a, b = "artifact name")`: where it was written and each name with its artifact
/// name.
type NamedOutputs = (Span, Vec<(Ident, Option<LitStr>)>);

/// What `#[step(...)]` says.
#[derive(Default)]
struct Options {
    outputs: Option<NamedOutputs>,
    settings: Settings,
}

/// The most characters an artifact name may have: `weft_core::limits::NAME`, which every
/// metadata store keeps (repeated here: this crate depends on no part of weft).
const ARTIFACT_NAME_LIMIT: usize = 512;

/// An artifact name no store could record fails the build, not the run.
fn check_artifact_name(literal: &LitStr) -> syn::Result<()> {
    let name = literal.value();
    let length = name.chars().count();
    if name.trim().is_empty() {
        return Err(syn::Error::new(
            literal.span(),
            "an artifact name cannot be empty",
        ));
    }
    if length > ARTIFACT_NAME_LIMIT {
        return Err(syn::Error::new(
            literal.span(),
            format!(
                "this artifact name has {length} characters; artifact names take at most {ARTIFACT_NAME_LIMIT}"
            ),
        ));
    }
    Ok(())
}

fn parse_options(attributes: TokenStream) -> syn::Result<Options> {
    let mut options = Options::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("outputs") {
            let mut names = Vec::new();
            meta.parse_nested_meta(|output| {
                let name = output.path.get_ident().cloned().ok_or_else(|| {
                    output.error(
                        "an output is named by an identifier, optionally `= \"artifact name\"`",
                    )
                })?;
                let artifact = if output.input.peek(syn::Token![=]) {
                    let literal = output.value()?.parse::<LitStr>()?;
                    check_artifact_name(&literal)?;
                    Some(literal)
                } else {
                    None
                };
                if names
                    .iter()
                    .any(|(existing, _): &(Ident, _)| *existing == name)
                {
                    return Err(syn::Error::new(
                        name.span(),
                        format!("output `{name}` is named twice"),
                    ));
                }
                names.push((name, artifact));
                Ok(())
            })?;
            options.outputs = Some((meta.path.span(), names));
            Ok(())
        } else if options.settings.parse(&meta, Level::Step)? {
            Ok(())
        } else {
            let name = meta
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            Err(meta.error(format!(
                "unknown `#[step]` option `{name}`; supported: outputs(..), cache = bool, cache(..), retry = n, retry(..), timeout = \"..\", isolated, on_start = f, on_success = f, on_failure = f"
            )))
        }
    });
    syn::parse::Parser::parse2(parser, attributes)?;
    Ok(options)
}

/// Splits the returned value into named outputs.
pub(crate) fn outputs(value: &Type, named: Option<&NamedOutputs>) -> syn::Result<Vec<Output>> {
    let output = |name: String, artifact: Option<&LitStr>, ty: &Type| Output {
        name,
        artifact_name: artifact.map(LitStr::value),
        ty: ty.clone(),
    };
    if signature::is_unit(value) {
        if let Some((span, _)) = named {
            return Err(syn::Error::new(
                *span,
                "this step returns nothing, so it has no outputs to name",
            ));
        }
        return Ok(Vec::new());
    }
    if let Type::Tuple(tuple) = value {
        let types: Vec<&Type> = tuple.elems.iter().collect();
        return match named {
            Some((span, names)) if names.len() != types.len() => Err(syn::Error::new(
                *span,
                format!(
                    "the step returns {} values but `outputs(...)` names {}",
                    types.len(),
                    names.len()
                ),
            )),
            Some((_, names)) => Ok(names
                .iter()
                .zip(types)
                .map(|((name, artifact), ty)| output(name.to_string(), artifact.as_ref(), ty))
                .collect()),
            None => Ok(types
                .iter()
                .enumerate()
                .map(|(i, ty)| output(format!("output_{i}"), None, ty))
                .collect()),
        };
    }
    match named {
        Some((span, names)) if names.len() != 1 => Err(syn::Error::new(
            *span,
            format!(
                "the step returns one value but `outputs(...)` names {}",
                names.len()
            ),
        )),
        Some((_, names)) => Ok(vec![output(
            names[0].0.to_string(),
            names[0].1.as_ref(),
            value,
        )]),
        None => Ok(vec![output("output".into(), None, value)]),
    }
}

/// The code hash: BLAKE3 of the signature and body tokens. Attributes (including `#[step]`
/// itself and doc comments) are not part of it, so editing them does not change it.
pub(crate) fn code_hash(function: &ItemFn) -> String {
    let sig = &function.sig;
    let block = &function.block;
    blake3::hash(quote!(#sig #block).to_string().as_bytes())
        .to_hex()
        .to_string()
}

pub(crate) fn expand(attributes: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let options = parse_options(attributes)?;
    let function: ItemFn = syn::parse2(item)?;
    let arguments = signature::arguments(&function.sig, "step")?;
    let Returned { fallible, value } = signature::returned(&function.sig.output)?;
    let outputs = outputs(&value, options.outputs.as_ref())?;
    let argument_list: Vec<String> = arguments.iter().map(|a| a.name.to_string()).collect();
    options.settings.check_inputs(&argument_list)?;
    let settings = options.settings.tokens();
    let code_hash = code_hash(&function);

    let name = &function.sig.ident;
    let name_text = name.to_string();
    let visibility = &function.vis;
    let child_visibility = signature::child_visibility(visibility);
    let plain = signature::hidden("step", name);
    let call = format_ident!("__WeftCall_{}", name);
    let def = format_ident!("__WEFT_STEP_{}", name);
    let execute = signature::hidden("execute", name);
    let outputs_fn = signature::hidden("outputs", name);

    let (docs, other_attributes): (Vec<_>, Vec<_>) = function
        .attrs
        .iter()
        .cloned()
        .partition(|attribute| attribute.path().is_ident("doc"));
    let mut plain_function = function.clone();
    plain_function.sig.ident = plain.clone();
    plain_function.attrs = other_attributes;

    let argument_names: Vec<&Ident> = arguments.iter().map(|a| &a.name).collect();
    let argument_texts: Vec<String> = arguments.iter().map(|a| a.name.to_string()).collect();
    let wrapper_arguments = arguments.iter().map(
        |Argument { name, ty }| quote_spanned!(ty.span() => #name: impl ::weft::IntoInput<#ty>),
    );
    let wrapper_arguments: Vec<TokenStream> = wrapper_arguments.collect();

    let output_types: Vec<&Type> = outputs.iter().map(|o| &o.ty).collect();
    let output_names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
    let returned = match outputs.len() {
        0 => quote!(::weft::Invocation),
        1 => {
            let ty = output_types[0];
            quote!(::weft::Output<#ty>)
        }
        _ => quote!((#(::weft::Output<#output_types>,)*)),
    };
    let locals: Vec<Ident> = (0..outputs.len())
        .map(|i| format_ident!("__weft_output_{}", i))
        .collect();
    let destructure = match outputs.len() {
        0 => quote!(()),
        1 => {
            let local = &locals[0];
            quote!(#local)
        }
        _ => quote!((#(#locals,)*)),
    };
    let unwrap_user = |on_error: TokenStream| {
        if fallible {
            quote!(match __weft_returned {
                ::core::result::Result::Ok(value) => value,
                ::core::result::Result::Err(error) => return ::core::result::Result::Err(#on_error(::weft::Error::from(error))),
            })
        } else {
            quote!(__weft_returned)
        }
    };
    let unwrap_plain = unwrap_user(quote!(::core::convert::identity));
    let unwrap_executed = unwrap_user(quote!(::weft::__private::StepFailure::User));

    let placeholders = match outputs.len() {
        0 => quote!(__weft_invocation),
        _ => {
            let each = output_names
                .iter()
                .map(|name| quote!(::weft::Output::placeholder(&__weft_invocation, #name)));
            if outputs.len() == 1 {
                quote!(#(#each)*)
            } else {
                quote!((#(#each,)*))
            }
        }
    };
    let plain_outputs = match outputs.len() {
        0 => quote!(::weft::Invocation::plain(#name_text)),
        _ => {
            let each = locals.iter().zip(&output_types).map(|(local, ty)| {
                quote_spanned!(ty.span() => ::weft::Output::plain(#local, ::weft::__private::clone_fn!(#ty), #name_text))
            });
            if outputs.len() == 1 {
                quote!(#(#each)*)
            } else {
                quote!((#(#each,)*))
            }
        }
    };

    let dynamic_outputs = match outputs.len() {
        0 => quote!(__weft_handle.invocation()),
        _ => {
            let each = output_names.iter().zip(&output_types).map(|(name, ty)| {
                quote_spanned!(ty.span() => ::weft::Output::dynamic(__weft_handle, #name, ::weft::__private::loader::<#ty>))
            });
            if outputs.len() == 1 {
                quote!(#(#each)*)
            } else {
                quote!((#(#each,)*))
            }
        }
    };
    let value_type = if signature::is_unit(&value) {
        quote!(())
    } else {
        quote!(#value)
    };
    let map_arguments: Vec<TokenStream> = arguments
        .iter()
        .map(|Argument { name, ty }| quote_spanned!(ty.span() => #name: impl ::weft::MapArg<#ty>))
        .collect();
    let bindings = quote!(::std::vec![#((#argument_texts, #argument_names.into_binding()),)*]);

    let load_inputs = arguments.iter().map(|Argument { name, ty }| {
        let text = name.to_string();
        quote_spanned!(ty.span() => let #name: #ty = ::weft::__private::input!(__weft_io, #text, #ty);)
    });
    // Spanned on the output's type, so that a type without a materializer is reported there.
    let save_outputs =
        locals.iter().zip(&output_names).zip(&output_types).map(
            |((local, name), ty)| quote_spanned!(ty.span() => __weft_io.save(#name, &#local)?;),
        );
    let input_defs = arguments.iter().map(|Argument { name, ty }| {
        let text = name.to_string();
        quote_spanned!(ty.span() => ::weft::__private::InputDef {
            name: #text,
            type_name: ::core::any::type_name::<#ty>,
            check_parameter: |value| ::weft::__private::check_parameter!(#ty, value),
        })
    });
    let output_defs = outputs.iter().map(|output| {
        let Output {
            name,
            artifact_name,
            ty,
        } = output;
        let artifact_name = match artifact_name {
            Some(artifact) => quote!(::core::option::Option::Some(#artifact)),
            None => quote!(::core::option::Option::None),
        };
        quote_spanned!(ty.span() => ::weft::__private::OutputDef {
            name: #name,
            artifact_name: #artifact_name,
            data_type: ::core::any::type_name::<#ty>,
            materializer: ::weft::__private::materializer_of::<#ty>,
            artifact_type: ::weft::__private::artifact_type_of::<#ty>,
        })
    });
    let module_doc =
        format!("Options and the plain function of step [`{name_text}`](fn@{name_text}).");

    Ok(quote! {
        #[doc(hidden)]
        #plain_function

        #(#docs)*
        #[allow(clippy::too_many_arguments)]
        #visibility fn #name(#(#wrapper_arguments),*) -> ::weft::Result<#returned> {
            #call::new().call(#(#argument_names),*)
        }

        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #[must_use = "a step call does nothing until `.call(..)`"]
        #visibility struct #call {
            options: ::weft::__private::CallOptions,
        }

        #[allow(clippy::too_many_arguments, clippy::new_without_default)]
        impl #call {
            #[doc(hidden)]
            #visibility fn new() -> Self {
                Self { options: ::weft::__private::CallOptions::default() }
            }

            /// Sets this invocation's id; it must be unique in the pipeline.
            #visibility fn id(mut self, id: impl ::core::convert::Into<::std::string::String>) -> Self {
                self.options.id(id.into());
                self
            }

            /// Runs this invocation only after `upstream` finished, without passing data.
            #visibility fn after(mut self, upstream: impl ::weft::After) -> Self {
                self.options.after(upstream);
                self
            }

            /// Applies per-invocation options.
            #visibility fn with(mut self, options: impl ::core::convert::Into<::weft::StepOptions>) -> Self {
                self.options.with(options);
                self
            }

            /// Calls the step: records an invocation inside a pipeline, runs it outside one.
            #visibility fn call(self, #(#wrapper_arguments),*) -> ::weft::Result<#returned> {
                #(let #argument_names = ::weft::IntoInput::into_input(#argument_names);)*
                match ::weft::__private::mode() {
                    ::weft::__private::Mode::Compile(__weft_session) => {
                        let __weft_invocation = __weft_session.record(
                            &#def,
                            self.options,
                            ::std::vec![#((#argument_texts, #argument_names.into_binding()),)*],
                        )?;
                        ::core::result::Result::Ok(#placeholders)
                    }
                    ::weft::__private::Mode::Dynamic(__weft_session) => {
                        let __weft_handle = __weft_session.call(&#def, self.options, #bindings)?;
                        __weft_handle.wait()?;
                        __weft_session.completed(&__weft_handle);
                        ::core::result::Result::Ok(#outputs_fn(&__weft_handle))
                    }
                    ::weft::__private::Mode::Plain => {
                        #(let #argument_names = #argument_names.into_value(#name_text, #argument_texts)?;)*
                        let __weft_returned = #plain(#(#argument_names),*);
                        let #destructure = #unwrap_plain;
                        ::core::result::Result::Ok(#plain_outputs)
                    }
                }
            }

            /// Starts the step in a dynamic pipeline and returns at once; pass the future on
            /// as an input, or wait for it.
            #visibility fn submit(self, #(#wrapper_arguments),*) -> ::weft::StepFuture<#value_type, #returned> {
                #(let #argument_names = ::weft::IntoInput::into_input(#argument_names);)*
                match ::weft::__private::mode() {
                    ::weft::__private::Mode::Dynamic(__weft_session) => {
                        match __weft_session.call(&#def, self.options, #bindings) {
                            ::core::result::Result::Ok(__weft_handle) => {
                                ::weft::StepFuture::submitted(#outputs_fn(&__weft_handle), __weft_handle)
                            }
                            ::core::result::Result::Err(__weft_error) => ::weft::StepFuture::refused(__weft_error),
                        }
                    }
                    _ => ::weft::StepFuture::refused(::weft::__private::outside(#name_text, "submit")),
                }
            }

            /// Starts one invocation per item of the mapped arguments, zipped (each has as
            /// many items); `unmapped(x)` passes `x` whole to every invocation.
            #visibility fn map(self, #(#map_arguments),*) -> ::weft::Result<::weft::MapResult<#value_type, #returned>> {
                self.map_items(::std::vec![#((#argument_texts, ::weft::MapArg::into_map_argument(#argument_names)),)*], false)
            }

            /// Starts one invocation per combination of the mapped arguments' items.
            #visibility fn product(self, #(#map_arguments),*) -> ::weft::Result<::weft::MapResult<#value_type, #returned>> {
                self.map_items(::std::vec![#((#argument_texts, ::weft::MapArg::into_map_argument(#argument_names)),)*], true)
            }

            fn map_items(
                self,
                arguments: ::std::vec::Vec<(&'static str, ::weft::__private::MapArgument)>,
                product: bool,
            ) -> ::weft::Result<::weft::MapResult<#value_type, #returned>> {
                match ::weft::__private::mode() {
                    ::weft::__private::Mode::Dynamic(__weft_session) => {
                        let handles = __weft_session.map(&#def, self.options, arguments, product)?;
                        ::core::result::Result::Ok(::weft::MapResult::new(
                            handles
                                .into_iter()
                                .map(|__weft_handle| ::weft::StepFuture::submitted(#outputs_fn(&__weft_handle), __weft_handle))
                                .collect(),
                        ))
                    }
                    _ => ::core::result::Result::Err(::weft::__private::outside(
                        #name_text,
                        if product { "product" } else { "map" },
                    )),
                }
            }

            /// Starts this invocation only once `upstream` has started (dynamic pipelines).
            #visibility fn start_after(mut self, upstream: impl ::weft::After) -> Self {
                self.options.start_after(upstream);
                self
            }
        }

        #[doc(hidden)]
        #[allow(unused_variables)]
        fn #outputs_fn(__weft_handle: &::weft::__private::Handle) -> #returned {
            #dynamic_outputs
        }

        #[doc(hidden)]
        fn #execute(
            __weft_io: &mut ::weft::__private::StepIo<'_>,
        ) -> ::core::result::Result<(), ::weft::__private::StepFailure> {
            #(#load_inputs)*
            let __weft_returned = #plain(#(#argument_names),*);
            let #destructure = #unwrap_executed;
            #(#save_outputs)*
            ::core::result::Result::Ok(())
        }

        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        #visibility static #def: ::weft::__private::StepDef = ::weft::__private::StepDef {
            name: #name_text,
            path: ::core::concat!(::core::module_path!(), "::", #name_text),
            code_hash: #code_hash,
            inputs: &[#(#input_defs),*],
            outputs: &[#(#output_defs),*],
            settings: #settings,
            execute: #execute,
        };

        ::weft::__private::inventory::submit! {
            ::weft::__private::StepRegistration(&#def)
        }

        #[doc = #module_doc]
        #[allow(unused_imports)]
        #visibility mod #name {
            use super::*;

            /// The step's function as written: calling it runs the body directly.
            #child_visibility use super::#plain as plain;
            /// The step's description, as registered with weft.
            #child_visibility use super::#def as STEP;

            /// One call of the step with per-invocation options.
            #child_visibility type Call = super::#call;

            /// A call of the step with an explicit invocation id.
            #child_visibility fn id(id: impl ::core::convert::Into<::std::string::String>) -> Call {
                Call::new().id(id)
            }

            /// A call of the step that runs after `upstream`.
            #child_visibility fn after(upstream: impl ::weft::After) -> Call {
                Call::new().after(upstream)
            }

            /// A call of the step with per-invocation options.
            #child_visibility fn with(options: impl ::core::convert::Into<::weft::StepOptions>) -> Call {
                Call::new().with(options)
            }

            /// A call of the step that starts once `upstream` has started (dynamic pipelines).
            #child_visibility fn start_after(upstream: impl ::weft::After) -> Call {
                Call::new().start_after(upstream)
            }

            /// Starts the step in a dynamic pipeline and returns at once.
            #[allow(clippy::too_many_arguments)]
            #child_visibility fn submit(#(#wrapper_arguments),*) -> ::weft::StepFuture<#value_type, #returned> {
                Call::new().submit(#(#argument_names),*)
            }

            /// One invocation per item of the mapped arguments, zipped (dynamic pipelines).
            #[allow(clippy::too_many_arguments)]
            #child_visibility fn map(#(#map_arguments),*) -> ::weft::Result<::weft::MapResult<#value_type, #returned>> {
                Call::new().map(#(#argument_names),*)
            }

            /// One invocation per combination of the mapped arguments' items (dynamic
            /// pipelines).
            #[allow(clippy::too_many_arguments)]
            #child_visibility fn product(#(#map_arguments),*) -> ::weft::Result<::weft::MapResult<#value_type, #returned>> {
                Call::new().product(#(#argument_names),*)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs_of(function: &str, attributes: &str) -> syn::Result<Vec<(String, Option<String>)>> {
        let function: ItemFn = syn::parse_str(function).unwrap();
        let options = parse_options(attributes.parse().unwrap())?;
        let value = signature::returned(&function.sig.output)?.value;
        Ok(outputs(&value, options.outputs.as_ref())?
            .into_iter()
            .map(|o| (o.name, o.artifact_name))
            .collect())
    }

    #[test]
    fn artifact_names_no_store_keeps_do_not_compile() {
        let error = outputs_of("fn f() -> u8 {}", "outputs(value = \"\")").unwrap_err();
        assert_eq!(error.to_string(), "an artifact name cannot be empty");
        let long = "a".repeat(ARTIFACT_NAME_LIMIT + 1);
        let error =
            outputs_of("fn f() -> u8 {}", &format!("outputs(value = \"{long}\")")).unwrap_err();
        assert!(error.to_string().contains("has 513 characters"), "{error}");
        let longest = "a".repeat(ARTIFACT_NAME_LIMIT);
        assert!(
            outputs_of(
                "fn f() -> u8 {}",
                &format!("outputs(value = \"{longest}\")")
            )
            .is_ok()
        );
    }

    #[test]
    fn outputs_are_named_from_the_attribute_or_by_position() {
        let named = |names: &[(&str, Option<&str>)]| {
            names
                .iter()
                .map(|(n, a)| (n.to_string(), a.map(str::to_string)))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            outputs_of("fn f() -> Rows {}", "").unwrap(),
            named(&[("output", None)])
        );
        assert_eq!(outputs_of("fn f() {}", "").unwrap(), named(&[]));
        assert_eq!(
            outputs_of("fn f() -> weft::Result<()> {}", "").unwrap(),
            named(&[])
        );
        assert_eq!(
            outputs_of(
                "fn f() -> (A, B) {}",
                "outputs(train, test = \"iris-test\")"
            )
            .unwrap(),
            named(&[("train", None), ("test", Some("iris-test"))])
        );
        assert_eq!(
            outputs_of("fn f() -> Result<(A, B), E> {}", "").unwrap(),
            named(&[("output_0", None), ("output_1", None)])
        );
        assert_eq!(
            outputs_of("fn f() -> Model {}", "outputs(model = \"iris-model\")").unwrap(),
            named(&[("model", Some("iris-model"))])
        );
    }

    #[test]
    fn output_names_must_match_the_returned_values() {
        for (function, attributes, expected) in [
            (
                "fn f() -> (A, B) {}",
                "outputs(a)",
                "returns 2 values but `outputs(...)` names 1",
            ),
            ("fn f() {}", "outputs(a)", "returns nothing"),
            ("fn f() -> A {}", "outputs(a, b)", "returns one value"),
            ("fn f() -> (A, B) {}", "outputs(a, a)", "named twice"),
            (
                "fn f() -> A {}",
                "retries = 3",
                "unknown `#[step]` option `retries`",
            ),
            (
                "fn f() -> A {}",
                "cache(ttl = 1)",
                "unknown cache option `ttl`",
            ),
        ] {
            let error = outputs_of(function, attributes).err().unwrap().to_string();
            assert!(error.contains(expected), "{function} {attributes}: {error}");
        }
    }

    #[test]
    fn the_code_hash_follows_the_body_not_the_attributes() {
        let hash = |text: &str| code_hash(&syn::parse_str(text).unwrap());
        let original = hash("fn f(x: u64) -> u64 { x + 1 }");
        assert_eq!(
            original,
            hash("/// docs\n#[inline] fn f(x: u64) -> u64 { x + 1 }")
        );
        assert_eq!(
            original,
            hash("fn f(x: u64) -> u64 {\n    x + 1 // a comment\n}")
        );
        assert_ne!(original, hash("fn f(x: u64) -> u64 { x + 2 }"));
        assert_ne!(original, hash("fn f(x: u32) -> u64 { x as u64 + 1 }"));
    }

    #[test]
    fn the_expansion_compiles_to_tokens() {
        let tokens = expand(
            quote!(outputs(train, test)),
            quote!(
                pub fn split(rows: Rows, ratio: f64) -> (Rows, Rows) {
                    todo!()
                }
            ),
        )
        .unwrap();
        let text = tokens.to_string();
        assert!(text.contains("pub fn split"));
        assert!(text.contains("__weft_step_split"));
        assert!(text.contains("pub mod split"));
    }
}
