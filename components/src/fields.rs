//! Finding an input field by name, with errors that say what the tuple does have.

use squall_engine::{ComponentError, Tuple, Value};

/// The value of field `name` of `input`, or an error naming the field, the input's
/// source and its fields.
pub(crate) fn named<'t>(
    kind: &str,
    key: &str,
    input: &'t Tuple,
    name: &str,
) -> Result<&'t Value, ComponentError> {
    input.field(name).ok_or_else(|| {
        ComponentError(format!(
            "{kind}: input from {}/{} has no field {name:?} (config key {key:?}); its fields: {}",
            input.source_component(),
            input.source_stream(),
            list(input)
        ))
    })
}

/// The first value of `input`, or an error when it has none.
pub(crate) fn first<'t>(kind: &str, input: &'t Tuple) -> Result<&'t Value, ComponentError> {
    input.get(0).ok_or_else(|| {
        ComponentError(format!(
            "{kind}: input from {}/{} has no values",
            input.source_component(),
            input.source_stream()
        ))
    })
}

fn list(input: &Tuple) -> String {
    if input.fields().is_empty() {
        "none".to_owned()
    } else {
        input.fields().join(", ")
    }
}
