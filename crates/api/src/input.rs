//! Text input rules that hold for every argument: no NUL character (U+0000). PostgreSQL cannot
//! store it in a text or jsonb column, so without this rule such a request failed on
//! PostgreSQL with an INTERNAL error (and succeeded on SQLite). Checked right after parsing,
//! in the variables and in the literals of the document, before anything runs.

use async_graphql::parser::types::{Directive, ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, Positioned, Variables};
use async_graphql_value::{ConstValue, Value};

pub(crate) const NUL_MESSAGE: &str = "text must not contain the NUL character (U+0000)";

/// Whether a constant value (a variable) holds a string with NUL, in a key or a value.
fn const_has_nul(value: &ConstValue) -> bool {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            ConstValue::String(text) if text.contains('\0') => return true,
            ConstValue::List(items) => stack.extend(items),
            ConstValue::Object(map) => {
                if map.keys().any(|key| key.contains('\0')) {
                    return true;
                }
                stack.extend(map.values());
            }
            _ => {}
        }
    }
    false
}

/// Whether a literal of the document holds a string with NUL.
fn value_has_nul(value: &Value) -> bool {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(text) if text.contains('\0') => return true,
            Value::List(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    false
}

/// Whether any argument (of a field or a directive) holds a NUL character.
fn arguments_have_nul(arguments: &[(Positioned<Name>, Positioned<Value>)]) -> bool {
    arguments
        .iter()
        .any(|(_, value)| value_has_nul(&value.node))
}

fn directives_have_nul(directives: &[Positioned<Directive>]) -> bool {
    directives
        .iter()
        .any(|directive| arguments_have_nul(&directive.node.arguments))
}

fn selection_has_nul(set: &SelectionSet) -> bool {
    let mut stack = vec![set];
    while let Some(set) = stack.pop() {
        for selection in &set.items {
            let (directives, child) = match &selection.node {
                Selection::Field(field) => {
                    if arguments_have_nul(&field.node.arguments) {
                        return true;
                    }
                    (&field.node.directives, &field.node.selection_set.node)
                }
                Selection::InlineFragment(fragment) => {
                    (&fragment.node.directives, &fragment.node.selection_set.node)
                }
                Selection::FragmentSpread(spread) => {
                    if directives_have_nul(&spread.node.directives) {
                        return true;
                    }
                    continue;
                }
            };
            if directives_have_nul(directives) {
                return true;
            }
            stack.push(child);
        }
    }
    false
}

/// Whether the document or the variables carry a NUL character in any text.
pub fn has_nul(document: &ExecutableDocument, variables: &Variables) -> bool {
    variables.values().any(const_has_nul)
        || document.operations.iter().any(|(_, operation)| {
            operation
                .node
                .variable_definitions
                .iter()
                .any(|definition| {
                    definition
                        .node
                        .default_value
                        .as_ref()
                        .is_some_and(|value| const_has_nul(&value.node))
                })
                || selection_has_nul(&operation.node.selection_set.node)
        })
        || document
            .fragments
            .values()
            .any(|fragment| selection_has_nul(&fragment.node.selection_set.node))
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn nul(query: &str, variables: serde_json::Value) -> bool {
        let document = parse_query(query).expect("a valid document");
        let variables = Variables::from_json(variables);
        has_nul(&document, &variables)
    }

    #[test]
    fn nul_is_found_in_variables_and_literals() {
        let plain = "mutation($n: String!) { createMunicipality(name: $n) { id } }";
        assert!(!nul(plain, serde_json::json!({ "n": "Bloemendaal" })));
        assert!(nul(plain, serde_json::json!({ "n": "Bloem\u{0}endaal" })));
        assert!(nul(
            plain,
            serde_json::json!({ "n": "x", "input": { "list": [["a\u{0}"]] } })
        ));
        assert!(nul(
            plain,
            serde_json::json!({ "n": "x", "input": { "k\u{0}": 1 } })
        ));
        assert!(nul(
            r#"mutation { createMunicipality(name: "a\u0000b") { id } }"#,
            serde_json::json!({})
        ));
        assert!(nul(
            r#"query($x: String = "a\u0000") { me { id } }"#,
            serde_json::json!({})
        ));
        assert!(nul(
            r#"query { ...F } fragment F on Query { investigations(first: 1, after: "\u0000") { totalCount } }"#,
            serde_json::json!({})
        ));
        assert!(nul(
            r#"query { me @include(if: true) { name @deprecated(reason: "\u0000") } }"#,
            serde_json::json!({})
        ));
        assert!(nul(
            r#"query { ... @deprecated(reason: "\u0000") { me { id } } }"#,
            serde_json::json!({})
        ));
        assert!(nul(
            r#"query { ...F @deprecated(reason: "\u0000") } fragment F on Query { me { id } }"#,
            serde_json::json!({})
        ));
        assert!(!nul(
            r#"query { investigations(first: 1, after: "abc") { totalCount } }"#,
            serde_json::json!({ "after": null })
        ));
    }
}
