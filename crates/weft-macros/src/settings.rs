//! The settings `#[step(..)]` and `#[pipeline(..)]` share: caching, retries, timeouts, and
//! (steps only) hooks. Parsed here into plain data, checked (durations, input names), and
//! turned into a `StepSettings` initializer.

use proc_macro2::TokenStream;
use quote::quote;
use syn::meta::ParseNestedMeta;
use syn::{Expr, ExprArray, Lit, LitBool, LitStr, Path};

/// Parsed settings; `None` means "not said here".
#[derive(Default)]
pub(crate) struct Settings {
    cache_enabled: Option<bool>,
    include_code: Option<bool>,
    include_parameters: Option<bool>,
    include_artifact_values: Option<bool>,
    include_artifact_ids: Option<bool>,
    ignored_inputs: Option<Vec<LitStr>>,
    file_dependencies: Option<Vec<LitStr>>,
    env: Option<Vec<LitStr>>,
    key_fn: Option<Path>,
    expires_after_ms: Option<u64>,
    max_attempts: Option<u32>,
    retry_delay_ms: Option<u64>,
    retry_backoff: Option<f64>,
    retry_max_delay_ms: Option<u64>,
    retry_jitter: Option<bool>,
    timeout_ms: Option<u64>,
    isolated: Option<bool>,
    on_start: Option<Path>,
    on_success: Option<Path>,
    on_failure: Option<Path>,
}

/// Where the settings are written, which decides what is allowed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Step,
    Pipeline,
}

impl Settings {
    /// Parses one `name ...` entry if it is a setting; `Ok(false)` if it is not one.
    pub(crate) fn parse(&mut self, meta: &ParseNestedMeta<'_>, level: Level) -> syn::Result<bool> {
        let name = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        match name.as_str() {
            "cache" if meta.input.peek(syn::Token![=]) => {
                self.cache_enabled = Some(meta.value()?.parse::<LitBool>()?.value);
            }
            "cache" => meta.parse_nested_meta(|cache| self.parse_cache(&cache))?,
            "retry" if meta.input.peek(syn::Token![=]) => {
                self.max_attempts = Some(attempts(&meta.value()?.parse()?)?);
            }
            "retry" => meta.parse_nested_meta(|retry| self.parse_retry(&retry))?,
            "timeout" => self.timeout_ms = Some(duration(&meta.value()?.parse()?)?),
            "isolated" if meta.input.peek(syn::Token![=]) => {
                self.isolated = Some(meta.value()?.parse::<LitBool>()?.value);
            }
            "isolated" => self.isolated = Some(true),
            "on_start" | "on_success" | "on_failure" if level == Level::Pipeline => {
                return Err(meta.error(format!(
                    "`{name}` is a step hook: put it on the steps, `#[step({name} = ..)]`"
                )));
            }
            "on_start" => self.on_start = Some(meta.value()?.parse()?),
            "on_success" => self.on_success = Some(meta.value()?.parse()?),
            "on_failure" => self.on_failure = Some(meta.value()?.parse()?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn parse_cache(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let name = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        match name.as_str() {
            "enabled" => self.cache_enabled = Some(meta.value()?.parse::<LitBool>()?.value),
            "include_code" => self.include_code = Some(meta.value()?.parse::<LitBool>()?.value),
            "include_parameters" => {
                self.include_parameters = Some(meta.value()?.parse::<LitBool>()?.value)
            }
            "include_artifact_values" => {
                self.include_artifact_values = Some(meta.value()?.parse::<LitBool>()?.value)
            }
            "include_artifact_ids" => {
                self.include_artifact_ids = Some(meta.value()?.parse::<LitBool>()?.value)
            }
            "ignored_inputs" => self.ignored_inputs = Some(strings(&meta.value()?.parse()?)?),
            "file_dependencies" => self.file_dependencies = Some(strings(&meta.value()?.parse()?)?),
            "env" => self.env = Some(strings(&meta.value()?.parse()?)?),
            "key_fn" => self.key_fn = Some(meta.value()?.parse()?),
            "expires_after" => self.expires_after_ms = Some(duration(&meta.value()?.parse()?)?),
            _ => {
                return Err(meta.error(format!(
                    "unknown cache option `{name}`; supported: enabled, include_code, include_parameters, include_artifact_values, include_artifact_ids, ignored_inputs, file_dependencies, env, key_fn, expires_after"
                )));
            }
        }
        Ok(())
    }

    fn parse_retry(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let name = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        match name.as_str() {
            "max_attempts" => self.max_attempts = Some(attempts(&meta.value()?.parse()?)?),
            "delay" => self.retry_delay_ms = Some(duration(&meta.value()?.parse()?)?),
            "backoff" => {
                let expr: Expr = meta.value()?.parse()?;
                let value = match &expr {
                    Expr::Lit(lit) => match &lit.lit {
                        Lit::Float(float) => float.base10_parse::<f64>()?,
                        Lit::Int(int) => int.base10_parse::<f64>()?,
                        _ => {
                            return Err(syn::Error::new_spanned(
                                &expr,
                                "backoff is a number, such as 2.0",
                            ));
                        }
                    },
                    _ => {
                        return Err(syn::Error::new_spanned(
                            &expr,
                            "backoff is a number, such as 2.0",
                        ));
                    }
                };
                if value < 1.0 {
                    return Err(syn::Error::new_spanned(
                        &expr,
                        "backoff must be at least 1.0 (delays never shrink)",
                    ));
                }
                self.retry_backoff = Some(value);
            }
            "max_delay" => self.retry_max_delay_ms = Some(duration(&meta.value()?.parse()?)?),
            "jitter" => self.retry_jitter = Some(meta.value()?.parse::<LitBool>()?.value),
            _ => {
                return Err(meta.error(format!(
                    "unknown retry option `{name}`; supported: max_attempts, delay, backoff, max_delay, jitter"
                )));
            }
        }
        Ok(())
    }

    /// Checks the settings against the step's arguments.
    pub(crate) fn check_inputs(&self, arguments: &[String]) -> syn::Result<()> {
        for input in self.ignored_inputs.iter().flatten() {
            if !arguments.contains(&input.value()) {
                return Err(syn::Error::new(
                    input.span(),
                    format!(
                        "`{}` is not an argument of this step (it has: {})",
                        input.value(),
                        arguments.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A `::weft::__private::StepSettings` initializer.
    pub(crate) fn tokens(&self) -> TokenStream {
        let option = |value: Option<TokenStream>| match value {
            Some(value) => quote!(::core::option::Option::Some(#value)),
            None => quote!(::core::option::Option::None),
        };
        let boolean = |value: Option<bool>| option(value.map(|v| quote!(#v)));
        let millis = |value: Option<u64>| option(value.map(|v| quote!(#v)));
        let list = |value: &Option<Vec<LitStr>>| {
            option(value.as_ref().map(|items| quote!(&[#(#items),*])))
        };
        let cache_enabled = boolean(self.cache_enabled);
        let include_code = boolean(self.include_code);
        let include_parameters = boolean(self.include_parameters);
        let include_artifact_values = boolean(self.include_artifact_values);
        let include_artifact_ids = boolean(self.include_artifact_ids);
        let ignored_inputs = list(&self.ignored_inputs);
        let file_dependencies = list(&self.file_dependencies);
        let env = list(&self.env);
        let key_fn = option(self.key_fn.as_ref().map(|path| {
            let name = quote!(#path).to_string().replace(' ', "");
            quote!(::weft::__private::KeyFn { name: #name, function: #path as fn() -> ::std::string::String })
        }));
        let expires_after_ms = millis(self.expires_after_ms);
        let max_attempts = option(self.max_attempts.map(|v| quote!(#v)));
        let retry_delay_ms = millis(self.retry_delay_ms);
        let retry_backoff = option(self.retry_backoff.map(|v| quote!(#v)));
        let retry_max_delay_ms = millis(self.retry_max_delay_ms);
        let retry_jitter = boolean(self.retry_jitter);
        let timeout_ms = millis(self.timeout_ms);
        let isolated = boolean(self.isolated);
        let on_start = option(
            self.on_start
                .as_ref()
                .map(|p| quote!(#p as fn(&::weft::StepContext))),
        );
        let on_success = option(
            self.on_success
                .as_ref()
                .map(|p| quote!(#p as fn(&::weft::StepContext))),
        );
        let on_failure = option(
            self.on_failure
                .as_ref()
                .map(|p| quote!(#p as fn(&::weft::StepContext, &::weft::model::StepError))),
        );
        quote!(::weft::__private::StepSettings {
            cache_enabled: #cache_enabled,
            include_code: #include_code,
            include_parameters: #include_parameters,
            include_artifact_values: #include_artifact_values,
            include_artifact_ids: #include_artifact_ids,
            ignored_inputs: #ignored_inputs,
            file_dependencies: #file_dependencies,
            env: #env,
            key_fn: #key_fn,
            expires_after_ms: #expires_after_ms,
            max_attempts: #max_attempts,
            retry_delay_ms: #retry_delay_ms,
            retry_backoff: #retry_backoff,
            retry_max_delay_ms: #retry_max_delay_ms,
            retry_jitter: #retry_jitter,
            timeout_ms: #timeout_ms,
            isolated: #isolated,
            on_start: #on_start,
            on_success: #on_success,
            on_failure: #on_failure,
        })
    }
}

fn strings(expr: &Expr) -> syn::Result<Vec<LitStr>> {
    let Expr::Array(ExprArray { elems, .. }) = expr else {
        return Err(syn::Error::new_spanned(
            expr,
            "expected a list of strings, such as [\"a\", \"b\"]",
        ));
    };
    elems
        .iter()
        .map(|item| match item {
            Expr::Lit(lit) => match &lit.lit {
                Lit::Str(text) => Ok(text.clone()),
                _ => Err(syn::Error::new_spanned(item, "expected a string")),
            },
            _ => Err(syn::Error::new_spanned(item, "expected a string")),
        })
        .collect()
}

fn duration(text: &LitStr) -> syn::Result<u64> {
    humantime::parse_duration(text.value().trim())
        .map(|duration| duration.as_millis() as u64)
        .map_err(|error| {
            syn::Error::new(
                text.span(),
                format!(
                    "`{}` is not a duration ({error}); write e.g. 500ms, 2s, 10m, 1h",
                    text.value()
                ),
            )
        })
}

fn attempts(expr: &Expr) -> syn::Result<u32> {
    let value = match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Int(int) => int.base10_parse::<u32>()?,
            _ => 0,
        },
        _ => 0,
    };
    if value == 0 {
        return Err(syn::Error::new_spanned(
            expr,
            "the number of attempts is a whole number, at least 1 (1: no retry)",
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, level: Level) -> syn::Result<Settings> {
        let mut settings = Settings::default();
        let parser = syn::meta::parser(|meta| {
            if settings.parse(&meta, level)? {
                Ok(())
            } else {
                Err(meta.error("not a setting"))
            }
        });
        syn::parse::Parser::parse_str(parser, text)?;
        Ok(settings)
    }

    #[test]
    fn settings_parse_with_durations_in_milliseconds() {
        let settings = parse(
            r#"cache(include_code = false, ignored_inputs = ["seed"], expires_after = "1h"), retry(max_attempts = 3, delay = "2s", backoff = 3, jitter = false), timeout = "10m", on_failure = alert"#,
            Level::Step,
        )
        .unwrap();
        assert_eq!(settings.include_code, Some(false));
        assert_eq!(settings.expires_after_ms, Some(3_600_000));
        assert_eq!(
            (
                settings.max_attempts,
                settings.retry_delay_ms,
                settings.retry_backoff
            ),
            (Some(3), Some(2000), Some(3.0))
        );
        assert_eq!(settings.timeout_ms, Some(600_000));
        assert!(settings.on_failure.is_some());
        assert_eq!(
            parse("cache = false, retry = 5", Level::Pipeline)
                .unwrap()
                .max_attempts,
            Some(5)
        );
    }

    #[test]
    fn mistakes_in_settings_are_explained() {
        for (text, expected) in [
            (r#"timeout = "soon""#, "is not a duration"),
            ("retry = 0", "at least 1"),
            ("retry(backoff = 0.5)", "at least 1.0"),
            ("retry(tries = 2)", "unknown retry option `tries`"),
            ("cache(keep = true)", "unknown cache option `keep`"),
            ("cache(env = \"HOME\")", "a list of strings"),
            ("on_start = hook", "is a step hook"),
        ] {
            let error = parse(text, Level::Pipeline)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains(expected), "{text}: {error}");
        }
        let settings = parse(r#"cache(ignored_inputs = ["sed"])"#, Level::Step).unwrap();
        let error = settings
            .check_inputs(&["seed".into()])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`sed` is not an argument of this step (it has: seed)"),
            "{error}"
        );
    }
}
