//! Reading a function signature the way weft needs it: simple owned arguments, and a return
//! type split into outputs. Shared by `#[step]` and `#[pipeline]`.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, Pat, PathArguments, ReturnType, Type, Visibility};

/// One argument: its name and declared type.
pub(crate) struct Argument {
    pub(crate) name: Ident,
    pub(crate) ty: Type,
}

/// Checks the parts of a signature every weft function shares, returning its arguments.
pub(crate) fn arguments(sig: &syn::Signature, what: &str) -> syn::Result<Vec<Argument>> {
    if let Some(asyncness) = &sig.asyncness {
        return Err(syn::Error::new(
            asyncness.span(),
            format!(
                "{what}s cannot be `async`: weft runs each step on its own thread; call async code inside with a runtime of your own"
            ),
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        return Err(syn::Error::new(
            unsafety.span(),
            format!("{what}s cannot be `unsafe`"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            format!(
                "{what}s cannot be generic: weft must know the concrete type of every input and output to store it"
            ),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new(
            variadic.span(),
            format!("{what}s cannot be variadic"),
        ));
    }
    let mut arguments = Vec::new();
    for input in &sig.inputs {
        let typed = match input {
            FnArg::Receiver(receiver) => {
                return Err(syn::Error::new(
                    receiver.span(),
                    format!("{what}s are free functions and cannot take `self`"),
                ));
            }
            FnArg::Typed(typed) => typed,
        };
        let name = match &*typed.pat {
            Pat::Ident(ident) if ident.by_ref.is_none() && ident.subpat.is_none() => {
                ident.ident.clone()
            }
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    format!(
                        "{what} arguments must be plain names (`rows: Rows`), not patterns: weft records each argument by its name"
                    ),
                ));
            }
        };
        check_owned(&typed.ty, what)?;
        arguments.push(Argument {
            name,
            ty: (*typed.ty).clone(),
        });
    }
    Ok(arguments)
}

fn check_owned(ty: &Type, what: &str) -> syn::Result<()> {
    match ty {
        Type::Reference(reference) => Err(syn::Error::new(
            reference.span(),
            format!(
                "{what} arguments are owned values: take `{}` instead of a reference (weft loads each input for the call)",
                pretty(&reference.elem)
            ),
        )),
        Type::ImplTrait(impl_trait) => Err(syn::Error::new(
            impl_trait.span(),
            format!("{what} arguments need a concrete type, not `impl Trait`"),
        )),
        Type::Infer(infer) => Err(syn::Error::new(
            infer.span(),
            format!("{what} arguments need a type"),
        )),
        _ => Ok(()),
    }
}

/// A type as a person would write it (`Vec<f64>`, not `Vec < f64 >`).
pub(crate) fn pretty(ty: &Type) -> String {
    ty.to_token_stream()
        .to_string()
        .replace(" < ", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" :: ", "::")
        .replace(" ,", ",")
        .replace("& ", "&")
}

/// The return type: whether it is a `Result`, and the value type inside.
pub(crate) struct Returned {
    /// `Some(span)` if the function returns a `...Result<T, E>`.
    pub(crate) fallible: bool,
    /// The value type (`()` when there is none).
    pub(crate) value: Type,
}

/// Splits `-> T` / `-> Result<T, E>` / nothing.
pub(crate) fn returned(output: &ReturnType) -> syn::Result<Returned> {
    let ty = match output {
        ReturnType::Default => {
            return Ok(Returned {
                fallible: false,
                value: syn::parse_quote!(()),
            });
        }
        ReturnType::Type(_, ty) => &**ty,
    };
    if let Type::ImplTrait(impl_trait) = ty {
        return Err(syn::Error::new(
            impl_trait.span(),
            "a step must name the type it returns, not `impl Trait`: weft stores it by type",
        ));
    }
    if let Some(inner) = result_value(ty) {
        return Ok(Returned {
            fallible: true,
            value: inner,
        });
    }
    Ok(Returned {
        fallible: false,
        value: ty.clone(),
    })
}

/// `T` if `ty` is a path whose last segment is named `Result` (or ends with it) with `T` as
/// its first type argument.
fn result_value(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if !last.ident.to_string().ends_with("Result") {
        return None;
    }
    let PathArguments::AngleBracketed(arguments) = &last.arguments else {
        return None;
    };
    arguments.args.iter().find_map(|argument| match argument {
        GenericArgument::Type(ty) => Some(ty.clone()),
        _ => None,
    })
}

/// Whether `ty` is `()`.
pub(crate) fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty())
}

/// The visibility that items inside a module generated next to the function need, so that
/// they are exactly as visible as the function itself.
pub(crate) fn child_visibility(visibility: &Visibility) -> TokenStream {
    match visibility {
        Visibility::Inherited => quote!(pub(super)),
        Visibility::Public(_) => quote!(pub),
        Visibility::Restricted(restricted) => {
            let path = &restricted.path;
            if path.is_ident("crate") {
                quote!(pub(crate))
            } else if path.is_ident("self") {
                quote!(pub(super))
            } else if path.is_ident("super") {
                quote!(pub(in super::super))
            } else if path.leading_colon.is_none()
                && path.segments.first().is_some_and(|s| s.ident == "crate")
            {
                quote!(pub(in #path))
            } else {
                quote!(pub(crate))
            }
        }
    }
}

/// A hidden identifier derived from `base`, hygienic enough not to collide with user items.
pub(crate) fn hidden(prefix: &str, base: &Ident) -> Ident {
    Ident::new(&format!("__weft_{prefix}_{base}"), Span::call_site())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(text: &str) -> syn::Signature {
        syn::parse_str::<syn::ItemFn>(&format!("{text} {{}}"))
            .unwrap()
            .sig
    }

    #[test]
    fn result_types_are_recognised_by_their_last_segment() {
        for (text, fallible, value) in [
            ("fn f() -> weft::Result<Rows>", true, "Rows"),
            ("fn f() -> Result<(A, B), MyError>", true, "(A , B)"),
            ("fn f() -> std::io::Result<u8>", true, "u8"),
            ("fn f() -> anyhow::Result<()>", true, "()"),
            ("fn f() -> Rows", false, "Rows"),
            ("fn f()", false, "()"),
        ] {
            let returned = returned(&sig(text).output).unwrap();
            assert_eq!(returned.fallible, fallible, "{text}");
            assert_eq!(
                returned.value.to_token_stream().to_string(),
                value,
                "{text}"
            );
        }
    }

    #[test]
    fn bad_arguments_are_refused_with_a_reason() {
        for (text, expected) in [
            ("fn f(x: &Rows)", "take `Rows` instead of a reference"),
            (
                "fn f(x: &Vec<std::string::String>)",
                "take `Vec<std::string::String>` instead",
            ),
            ("fn f((a, b): (u8, u8))", "plain names"),
            ("async fn f()", "cannot be `async`"),
            ("fn f<T>(x: T)", "cannot be generic"),
            ("fn f(x: impl Clone)", "not `impl Trait`"),
        ] {
            let error = arguments(&sig(text), "step").err().unwrap().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
