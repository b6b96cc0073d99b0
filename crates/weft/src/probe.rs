//! Compile-time dispatch on what a step argument's declared type can do.
//!
//! A step argument may arrive as a parameter (JSON), as one artifact or as a list of
//! artifacts, decided by the call site. The generated body must handle each case for a type
//! known only at expansion time, without requiring every argument type to be both
//! deserializable and an artifact. Method resolution on `&&Probe<T>` picks the capable
//! implementation when `T` has the trait and falls back (one auto-deref away) to one that
//! reports a clear error otherwise. This works because the generated code always names a
//! concrete type.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde_json::Value;
use weft_artifacts::{Artifact, StoredArtifact};
use weft_engine::{StepFailure, StepIo};

/// A zero-sized stand-in for the type `T`.
pub struct Probe<T>(PhantomData<fn() -> T>);

impl<T> Probe<T> {
    /// The probe for `T`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

fn type_name<T>() -> &'static str {
    std::any::type_name::<T>()
}

fn system(message: String) -> StepFailure {
    StepFailure::System(anyhow::Error::msg(message))
}

/// `T` decodes from a JSON parameter.
pub trait FromParameter<T> {
    /// Decodes argument `name` from its parameter value.
    fn parameter(&self, name: &str, value: &Value) -> Result<T, StepFailure>;
    /// Checks that a value would decode.
    fn check(&self, value: &Value) -> Result<(), String>;
}
impl<T: DeserializeOwned> FromParameter<T> for &Probe<T> {
    fn parameter(&self, name: &str, value: &Value) -> Result<T, StepFailure> {
        T::deserialize(value).map_err(|e| {
            system(format!(
                "parameter `{name}` is not a `{}`: {e}",
                type_name::<T>()
            ))
        })
    }
    fn check(&self, value: &Value) -> Result<(), String> {
        T::deserialize(value).map(|_| ()).map_err(|e| e.to_string())
    }
}
/// Fallback: `T` is not deserializable.
pub trait NoParameter<T> {
    /// Always an error.
    fn parameter(&self, name: &str, value: &Value) -> Result<T, StepFailure>;
    /// Always an error.
    fn check(&self, value: &Value) -> Result<(), String>;
}
impl<T> NoParameter<T> for Probe<T> {
    fn parameter(&self, name: &str, _: &Value) -> Result<T, StepFailure> {
        Err(system(format!(
            "argument `{name}` was given as a parameter, but `{}` cannot be decoded from JSON (it does not implement `serde::Deserialize`)",
            type_name::<T>()
        )))
    }
    fn check(&self, _: &Value) -> Result<(), String> {
        Err(format!(
            "`{}` cannot be decoded from JSON (it does not implement `serde::Deserialize`)",
            type_name::<T>()
        ))
    }
}

/// `T` loads from one artifact version.
pub trait FromArtifact<T> {
    /// Loads argument `name`.
    fn artifact(
        &self,
        io: &StepIo<'_>,
        name: &str,
        stored: &StoredArtifact,
    ) -> Result<T, StepFailure>;
}
impl<T: Artifact> FromArtifact<T> for &Probe<T> {
    fn artifact(
        &self,
        io: &StepIo<'_>,
        name: &str,
        stored: &StoredArtifact,
    ) -> Result<T, StepFailure> {
        io.load(stored).map_err(|failure| in_input(name, failure))
    }
}
/// Fallback: `T` is not an artifact.
pub trait NoArtifact<T> {
    /// Always an error.
    fn artifact(
        &self,
        io: &StepIo<'_>,
        name: &str,
        stored: &StoredArtifact,
    ) -> Result<T, StepFailure>;
}
impl<T> NoArtifact<T> for Probe<T> {
    fn artifact(&self, _: &StepIo<'_>, name: &str, _: &StoredArtifact) -> Result<T, StepFailure> {
        Err(system(format!(
            "argument `{name}` was given an artifact, but `{}` is not an artifact type",
            type_name::<T>()
        )))
    }
}

/// `Vec<T>` loads from a list of artifact versions (fan-in).
pub trait FromArtifacts<T> {
    /// Loads argument `name` item by item.
    fn artifacts(
        &self,
        io: &StepIo<'_>,
        name: &str,
        list: &[std::sync::Arc<StoredArtifact>],
    ) -> Result<T, StepFailure>;
}
impl<T: Artifact> FromArtifacts<Vec<T>> for &Probe<Vec<T>> {
    fn artifacts(
        &self,
        io: &StepIo<'_>,
        name: &str,
        list: &[std::sync::Arc<StoredArtifact>],
    ) -> Result<Vec<T>, StepFailure> {
        list.iter()
            .map(|stored| io.load(stored).map_err(|failure| in_input(name, failure)))
            .collect()
    }
}
/// Fallback: not a `Vec` of artifacts.
pub trait NoArtifacts<T> {
    /// Always an error.
    fn artifacts(
        &self,
        io: &StepIo<'_>,
        name: &str,
        list: &[std::sync::Arc<StoredArtifact>],
    ) -> Result<T, StepFailure>;
}
impl<T> NoArtifacts<T> for Probe<T> {
    fn artifacts(
        &self,
        _: &StepIo<'_>,
        name: &str,
        _: &[std::sync::Arc<StoredArtifact>],
    ) -> Result<T, StepFailure> {
        Err(system(format!(
            "argument `{name}` was given several artifacts, but `{}` is not a `Vec` of artifacts",
            type_name::<T>()
        )))
    }
}

/// `T` loads as one item of an artifact version holding a `Vec<T>` (a map over it).
pub trait FromItem<T> {
    /// Loads item `index` of argument `name`'s collection.
    fn item(
        &self,
        io: &StepIo<'_>,
        name: &str,
        stored: &StoredArtifact,
        index: u32,
    ) -> Result<T, StepFailure>;
}
impl<T> FromItem<T> for &Probe<T>
where
    Vec<T>: Artifact,
    <Vec<T> as Artifact>::Materializer: weft_artifacts::ItemFormat<T>,
{
    fn item(
        &self,
        io: &StepIo<'_>,
        name: &str,
        stored: &StoredArtifact,
        index: u32,
    ) -> Result<T, StepFailure> {
        io.load_item(stored, index)
            .map_err(|failure| in_input(name, failure))
    }
}
/// Fallback: `Vec<T>` is no artifact.
pub trait NoItem<T> {
    /// Always an error.
    fn item(
        &self,
        io: &StepIo<'_>,
        name: &str,
        stored: &StoredArtifact,
        index: u32,
    ) -> Result<T, StepFailure>;
}
impl<T> NoItem<T> for Probe<T> {
    fn item(
        &self,
        _: &StepIo<'_>,
        name: &str,
        _: &StoredArtifact,
        _: u32,
    ) -> Result<T, StepFailure> {
        Err(system(format!(
            "argument `{name}` was given an item of a collection, but `Vec<{}>` is not an artifact type",
            type_name::<T>()
        )))
    }
}

/// `T` can be copied (for outputs used twice outside a pipeline).
pub trait CloneFn<T> {
    /// A copy function.
    fn clone_fn(&self) -> Option<fn(&T) -> T>;
}
impl<T: Clone> CloneFn<T> for &Probe<T> {
    fn clone_fn(&self) -> Option<fn(&T) -> T> {
        Some(T::clone)
    }
}
/// Fallback: `T` is not `Clone`.
pub trait NoCloneFn<T> {
    /// No copy function.
    fn clone_fn(&self) -> Option<fn(&T) -> T>;
}
impl<T> NoCloneFn<T> for Probe<T> {
    fn clone_fn(&self) -> Option<fn(&T) -> T> {
        None
    }
}

fn in_input(name: &str, failure: StepFailure) -> StepFailure {
    match failure {
        StepFailure::System(error) => {
            StepFailure::System(error.context(format!("cannot load input `{name}`")))
        }
        other => other,
    }
}

/// Loads argument `$name` of declared type `$ty` from `$io`, however it was bound.
#[doc(hidden)]
#[macro_export]
macro_rules! __weft_input {
    ($io:expr, $name:expr, $ty:ty) => {{
        #[allow(unused_imports)]
        use $crate::__private::probe::{
            CloneFn as _, FromArtifact as _, FromArtifacts as _, FromItem as _, FromParameter as _,
            NoArtifact as _, NoArtifacts as _, NoCloneFn as _, NoItem as _, NoParameter as _,
        };
        let probe = $crate::__private::probe::Probe::<$ty>::new();
        match $io.binding($name)? {
            $crate::__private::Binding::Parameter(value) => (&&probe).parameter($name, value)?,
            $crate::__private::Binding::Artifact(stored) => {
                (&&probe).artifact(&*$io, $name, stored)?
            }
            $crate::__private::Binding::Artifacts(list) => {
                (&&probe).artifacts(&*$io, $name, list)?
            }
            $crate::__private::Binding::Item(stored, index) => {
                (&&probe).item(&*$io, $name, stored, *index)?
            }
        }
    }};
}

/// Checks a JSON value against argument type `$ty`.
#[doc(hidden)]
#[macro_export]
macro_rules! __weft_check_parameter {
    ($ty:ty, $value:expr) => {{
        #[allow(unused_imports)]
        use $crate::__private::probe::{FromParameter as _, NoParameter as _};
        (&&$crate::__private::probe::Probe::<$ty>::new()).check($value)
    }};
}

/// A copy function for `$ty` if it is `Clone`.
#[doc(hidden)]
#[macro_export]
macro_rules! __weft_clone_fn {
    ($ty:ty) => {{
        #[allow(unused_imports)]
        use $crate::__private::probe::{CloneFn as _, NoCloneFn as _};
        (&&$crate::__private::probe::Probe::<$ty>::new()).clone_fn()
    }};
}
