//! Limits on the shape of one GraphQL document, checked right after parsing (before validation
//! and execution, so nothing reaches the database): how many operations, root fields, aliases,
//! field selections in all, and directives per field. Depth and complexity are async-graphql's
//! own limits (`schema.rs`); these cover what they do not (duplicated fields and aliases cost
//! little complexity each but add up).

use async_graphql::ServerError;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// The document limits (configurable; defaults fit every example operation with room).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocumentLimits {
    /// Operations in one document.
    pub max_operations: usize,
    /// Fields at the root of one operation (aliases of the same field count each).
    pub max_root_fields: usize,
    /// Aliased fields in the whole document.
    pub max_aliases: usize,
    /// Field selections in the whole document, fragments included (each spread counts).
    pub max_fields: usize,
    /// Directives on one field.
    pub max_directives_per_field: usize,
}

impl Default for DocumentLimits {
    fn default() -> Self {
        DocumentLimits {
            max_operations: 10,
            max_root_fields: 20,
            max_aliases: 30,
            max_fields: 400,
            max_directives_per_field: 4,
        }
    }
}

#[derive(Default)]
struct Tally {
    aliases: usize,
    fields: usize,
    most_directives: usize,
}

/// Walks a selection set; fragment spreads are followed (each spread counts again) with a
/// bound on nesting, so a fragment cycle cannot loop.
fn walk(document: &ExecutableDocument, set: &SelectionSet, tally: &mut Tally, depth: usize) {
    if depth > 64 {
        return;
    }
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                tally.fields += 1;
                if field.node.alias.is_some() {
                    tally.aliases += 1;
                }
                tally.most_directives = tally.most_directives.max(field.node.directives.len());
                walk(document, &field.node.selection_set.node, tally, depth + 1);
            }
            Selection::InlineFragment(fragment) => walk(
                document,
                &fragment.node.selection_set.node,
                tally,
                depth + 1,
            ),
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    walk(
                        document,
                        &fragment.node.selection_set.node,
                        tally,
                        depth + 1,
                    );
                }
            }
        }
        if tally.fields > 100_000 {
            return;
        }
    }
}

/// Checks a parsed document against the limits; the message says which limit and its value.
pub fn check(document: &ExecutableDocument, limits: &DocumentLimits) -> Result<(), String> {
    let operations: Vec<_> = document.operations.iter().collect();
    if operations.len() > limits.max_operations {
        return Err(format!(
            "the document has {} operations; at most {} are accepted",
            operations.len(),
            limits.max_operations
        ));
    }
    let mut tally = Tally::default();
    for (_, operation) in operations {
        let root = &operation.node.selection_set.node;
        let mut root_tally = Tally::default();
        for selection in &root.items {
            if let Selection::Field(_) = selection.node {
                root_tally.fields += 1;
            }
        }
        if root_tally.fields > limits.max_root_fields {
            return Err(format!(
                "an operation selects {} root fields; at most {} are accepted",
                root_tally.fields, limits.max_root_fields
            ));
        }
        walk(document, root, &mut tally, 0);
    }
    if tally.aliases > limits.max_aliases {
        return Err(format!(
            "the document uses {} aliases; at most {} are accepted",
            tally.aliases, limits.max_aliases
        ));
    }
    if tally.fields > limits.max_fields {
        return Err(format!(
            "the document selects {} fields; at most {} are accepted",
            tally.fields, limits.max_fields
        ));
    }
    if tally.most_directives > limits.max_directives_per_field {
        return Err(format!(
            "a field carries {} directives; at most {} are accepted",
            tally.most_directives, limits.max_directives_per_field
        ));
    }
    Ok(())
}

/// A refusal raised while checking a parsed document: BAD_USER_INPUT with the message.
pub(crate) fn refused(message: impl Into<String>) -> ServerError {
    let mut error = ServerError::new(message, None);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", "BAD_USER_INPUT");
    error
}

/// Whether a document selects `__schema` or `__type` anywhere (operations and fragments).
pub fn asks_for_schema(document: &ExecutableDocument) -> bool {
    fn asks(set: &SelectionSet, depth: usize) -> bool {
        depth <= 64
            && set.items.iter().any(|selection| match &selection.node {
                Selection::Field(field) => {
                    matches!(field.node.name.node.as_str(), "__schema" | "__type")
                        || asks(&field.node.selection_set.node, depth + 1)
                }
                Selection::InlineFragment(fragment) => {
                    asks(&fragment.node.selection_set.node, depth + 1)
                }
                Selection::FragmentSpread(_) => false,
            })
    }
    document
        .operations
        .iter()
        .any(|(_, operation)| asks(&operation.node.selection_set.node, 0))
        || document
            .fragments
            .values()
            .any(|fragment| asks(&fragment.node.selection_set.node, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn checked(query: &str) -> Result<(), String> {
        check(&parse_query(query).unwrap(), &DocumentLimits::default())
    }

    #[test]
    fn ordinary_operations_pass() {
        assert!(checked("{ me { id name } investigations(first: 50) { totalCount } }").is_ok());
    }

    #[test]
    fn too_many_aliases_fail() {
        let query = format!(
            "{{ {} }}",
            (0..101)
                .map(|i| format!("a{i}: me {{ id }}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let error = checked(&query).unwrap_err();
        assert!(
            error.contains("root fields") || error.contains("aliases"),
            "{error}"
        );
    }

    #[test]
    fn duplicated_fields_fail() {
        let query = format!("{{ me {{ {} }} }}", "id ".repeat(500));
        assert!(checked(&query).unwrap_err().contains("fields"));
    }

    #[test]
    fn directive_overloading_fails() {
        let query = format!("{{ __typename {} }}", "@include(if: true) ".repeat(10));
        assert!(checked(&query).unwrap_err().contains("directives"));
    }

    #[test]
    fn fragments_count_where_they_are_spread() {
        let fields = (0..50)
            .map(|i| format!("f{i}: id"))
            .collect::<Vec<_>>()
            .join(" ");
        let query =
            format!("query {{ me {{ ...F ...F ...F }} }} fragment F on User {{ {fields} }}");
        assert!(checked(&query).is_err());
    }

    #[test]
    fn schema_requests_are_found_in_operations_and_fragments() {
        let asks = |query: &str| asks_for_schema(&parse_query(query).unwrap());
        assert!(asks("{ __schema { types { name } } }"));
        assert!(asks("{ __type(name: \"User\") { name } }"));
        assert!(asks("{ ... on Query { __schema { types { name } } } }"));
        assert!(asks(
            "{ ...F } fragment F on Query { __type(name: \"User\") { name } }"
        ));
        assert!(!asks("{ __typename me { id __typename } }"));
    }

    #[test]
    fn fragment_cycles_terminate() {
        let query = "query { me { ...A } } fragment A on User { ...B } fragment B on User { ...A }";
        assert!(checked(query).is_ok());
    }
}
