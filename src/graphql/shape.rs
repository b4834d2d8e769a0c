//! What a parsed document will cost and carry, measured in one linear pass
//! before validation: its aliases and directives as written, its
//! selections as they expand (a fragment spread counts as the fragment's
//! whole selection, wherever it is spread), and the text of its literal
//! arguments. The GraphQL engine's validator and executor walk fragment
//! spreads as they expand, so a small document whose fragments each spread
//! the next twice makes them do 2^n work; here every fragment's size is
//! computed once, so measuring costs no more than reading.

use std::collections::HashMap;

use async_graphql::Name;
use async_graphql::parser::Positioned;
use async_graphql::parser::types::{
    Directive, ExecutableDocument, FragmentDefinition, Selection, SelectionSet,
};
use async_graphql_value::{ConstValue, Value};

use crate::domain::text::forbidden_control;

/// Counts of a document.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub aliases: usize,
    pub directives: usize,
    /// Fields, inline fragments and spreads, with every spread counted as
    /// the selections it expands to, for the operation that expands most.
    pub expanded: u64,
    /// Deepest nesting of selection sets, a spread or inline fragment
    /// counting as a level as a field with a selection does.
    pub nesting: usize,
}

/// A selection set's expanded size and nesting.
#[derive(Debug, Default, Clone, Copy)]
struct Size {
    selections: u64,
    nesting: usize,
}

/// Why a document cannot be measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeError {
    /// A fragment spreads itself, directly or through others.
    FragmentCycle(String),
}

/// Measures `document`.
pub fn measure(document: &ExecutableDocument) -> Result<Shape, ShapeError> {
    let mut shape = Shape::default();
    let mut sizes = FragmentSizes {
        fragments: &document.fragments,
        known: HashMap::new(),
    };
    for (_, operation) in document.operations.iter() {
        shape.directives += operation.node.directives.len();
        count_written(&operation.node.selection_set, &mut shape);
        let size = sizes.of_set(&operation.node.selection_set)?;
        shape.expanded = shape.expanded.max(size.selections);
        shape.nesting = shape.nesting.max(size.nesting);
    }
    for fragment in document.fragments.values() {
        shape.directives += fragment.node.directives.len();
        count_written(&fragment.node.selection_set, &mut shape);
    }
    Ok(shape)
}

/// Aliases and directives as written (a fragment counts once).
fn count_written(set: &Positioned<SelectionSet>, shape: &mut Shape) {
    for item in &set.node.items {
        match &item.node {
            Selection::Field(field) => {
                shape.aliases += usize::from(field.node.alias.is_some());
                shape.directives += field.node.directives.len();
                count_written(&field.node.selection_set, shape);
            }
            Selection::FragmentSpread(spread) => shape.directives += spread.node.directives.len(),
            Selection::InlineFragment(inline) => {
                shape.directives += inline.node.directives.len();
                count_written(&inline.node.selection_set, shape);
            }
        }
    }
}

/// Expanded sizes, each fragment's computed once.
struct FragmentSizes<'a> {
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    /// `None` while a fragment is being measured: meeting it again is a cycle.
    known: HashMap<&'a str, Option<Size>>,
}

impl<'a> FragmentSizes<'a> {
    fn of_set(&mut self, set: &'a Positioned<SelectionSet>) -> Result<Size, ShapeError> {
        let mut total = Size::default();
        for item in &set.node.items {
            let inner = match &item.node {
                Selection::Field(field) if field.node.selection_set.node.items.is_empty() => None,
                Selection::Field(field) => Some(self.of_set(&field.node.selection_set)?),
                Selection::InlineFragment(inline) => Some(self.of_set(&inline.node.selection_set)?),
                Selection::FragmentSpread(spread) => {
                    Some(self.of_fragment(spread.node.fragment_name.node.as_str())?)
                }
            };
            let inner = inner.map_or(Size::default(), |size| Size {
                nesting: size.nesting + 1,
                ..size
            });
            total.selections = total
                .selections
                .saturating_add(inner.selections)
                .saturating_add(1);
            total.nesting = total.nesting.max(inner.nesting);
        }
        Ok(total)
    }

    fn of_fragment(&mut self, name: &'a str) -> Result<Size, ShapeError> {
        match self.known.get(name) {
            Some(Some(size)) => return Ok(*size),
            Some(None) => return Err(ShapeError::FragmentCycle(name.to_owned())),
            None => {}
        }
        // An unknown fragment is the validator's to report.
        let Some(fragment) = self.fragments.get(name) else {
            return Ok(Size::default());
        };
        self.known.insert(name, None);
        let size = self.of_set(&fragment.node.selection_set)?;
        self.known.insert(name, Some(size));
        Ok(size)
    }
}

/// A text input carrying a character no input may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForbiddenCharacter {
    /// Where: `argument input.content`, `variable $i.content`.
    pub place: String,
    pub character: char,
}

/// The first string in the document's literal arguments (fields,
/// directives, variable defaults) with a control character other than tab
/// and line breaks.
pub fn forbidden_in_document(document: &ExecutableDocument) -> Option<ForbiddenCharacter> {
    let mut found = None;
    for (_, operation) in document.operations.iter() {
        for variable in &operation.node.variable_definitions {
            if let Some(default) = &variable.node.default_value {
                let place = format!("variable ${}", variable.node.name.node);
                found = found.or_else(|| in_const(&default.node, &place));
            }
        }
        found = found
            .or_else(|| in_directives(&operation.node.directives))
            .or_else(|| in_set(&operation.node.selection_set));
    }
    for fragment in document.fragments.values() {
        found = found
            .or_else(|| in_directives(&fragment.node.directives))
            .or_else(|| in_set(&fragment.node.selection_set));
    }
    found
}

/// The first string among the request's variables with such a character.
pub fn forbidden_in_variables<'a>(
    variables: impl IntoIterator<Item = (&'a Name, &'a ConstValue)>,
) -> Option<ForbiddenCharacter> {
    variables
        .into_iter()
        .find_map(|(name, value)| in_const(value, &format!("variable ${name}")))
}

fn in_set(set: &Positioned<SelectionSet>) -> Option<ForbiddenCharacter> {
    set.node.items.iter().find_map(|item| match &item.node {
        Selection::Field(field) => field
            .node
            .arguments
            .iter()
            .find_map(|(name, value)| in_value(&value.node, &format!("argument {}", name.node)))
            .or_else(|| in_directives(&field.node.directives))
            .or_else(|| in_set(&field.node.selection_set)),
        Selection::FragmentSpread(spread) => in_directives(&spread.node.directives),
        Selection::InlineFragment(inline) => {
            in_directives(&inline.node.directives).or_else(|| in_set(&inline.node.selection_set))
        }
    })
}

fn in_directives(directives: &[Positioned<Directive>]) -> Option<ForbiddenCharacter> {
    directives.iter().find_map(|d| {
        d.node.arguments.iter().find_map(|(name, value)| {
            in_value(
                &value.node,
                &format!("argument {} of @{}", name.node, d.node.name.node),
            )
        })
    })
}

fn in_text(text: &str, place: &str) -> Option<ForbiddenCharacter> {
    forbidden_control(text).map(|character| ForbiddenCharacter {
        place: place.to_owned(),
        character,
    })
}

fn in_value(value: &Value, place: &str) -> Option<ForbiddenCharacter> {
    match value {
        Value::String(s) => in_text(s, place),
        Value::List(items) => items.iter().find_map(|v| in_value(v, place)),
        Value::Object(fields) => fields
            .iter()
            .find_map(|(k, v)| in_value(v, &format!("{place}.{k}"))),
        _ => None,
    }
}

fn in_const(value: &ConstValue, place: &str) -> Option<ForbiddenCharacter> {
    match value {
        ConstValue::String(s) => in_text(s, place),
        ConstValue::List(items) => items.iter().find_map(|v| in_const(v, place)),
        ConstValue::Object(fields) => fields
            .iter()
            .find_map(|(k, v)| in_const(v, &format!("{place}.{k}"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    fn shape(query: &str) -> Result<Shape, ShapeError> {
        measure(&parse_query(query).expect("parses"))
    }

    /// `n` fragments, each spreading the next `fanout` times.
    pub fn doubling_chain(n: usize, fanout: usize) -> String {
        let mut doc = String::from("query { ...F0 }\n");
        for i in 0..n {
            doc.push_str(&format!("fragment F{i} on Query {{ "));
            for _ in 0..fanout {
                doc.push_str(&format!("...F{} ", i + 1));
            }
            doc.push_str("}\n");
        }
        doc.push_str(&format!(
            "fragment F{n} on Query {{ badgeKinds {{ kind }} }}\n"
        ));
        doc
    }

    #[test]
    fn plain_selections_count_once_each() {
        let s = shape("{ conversations { nodes { id badges { label } } } }").expect("shape");
        assert_eq!(s.expanded, 5);
        assert_eq!(s.aliases, 0);
    }

    #[test]
    fn a_spread_counts_as_the_fragment_it_expands_to() {
        let s = shape(
            "{ a: conversations { ...C } b: conversations { ...C } }
             fragment C on ConversationConnection { nodes { id sessionId } }",
        )
        .expect("shape");
        // Two fields, two spreads, each expanding to nodes, id, sessionId.
        assert_eq!(s.expanded, 2 * (1 + 1 + 3));
        assert_eq!(s.aliases, 2);
    }

    #[test]
    fn a_doubling_chain_is_measured_without_doubling_the_work() {
        let small = shape(&doubling_chain(10, 2)).expect("shape").expanded;
        let large = shape(&doubling_chain(60, 2)).expect("shape").expanded;
        assert!(small > 2u64.pow(10), "{small}");
        assert!(large > 2u64.pow(60), "{large}");
        assert_eq!(
            shape(&doubling_chain(200, 3)).expect("shape").expanded,
            u64::MAX
        );
    }

    #[test]
    fn nesting_counts_fields_with_selections_and_every_spread() {
        assert_eq!(shape("{ badgeKinds { kind } }").expect("shape").nesting, 1);
        assert_eq!(
            shape("{ ...A } fragment A on Query { conversations { nodes { id } } }")
                .expect("shape")
                .nesting,
            3
        );
        assert_eq!(shape(&doubling_chain(30, 1)).expect("shape").nesting, 32);
    }

    #[test]
    fn fragment_cycles_are_found() {
        assert_eq!(
            shape("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }"),
            Err(ShapeError::FragmentCycle("A".into()))
        );
    }

    #[test]
    fn control_characters_are_found_in_literals_and_variables() {
        let doc = parse_query(
            r#"mutation { appendMessage(input: { sessionId: "cs_x", content: "hi\u0000" }) { message { id } } }"#,
        )
        .expect("parses");
        let found = forbidden_in_document(&doc).expect("found");
        assert_eq!(found.character, '\0');
        assert_eq!(found.place, "argument input.content");

        let fine = parse_query(
            r#"{ conversations(filter: { search: "two\nlines\tand tab" }) { nodes { id } } }"#,
        )
        .expect("parses");
        assert_eq!(forbidden_in_document(&fine), None);

        let vars = async_graphql::Variables::from_json(serde_json::json!({
            "i": { "items": ["ok", "bad\u{7}"] }
        }));
        let found = forbidden_in_variables(vars.iter()).expect("found");
        assert_eq!(
            (found.place.as_str(), found.character),
            ("variable $i.items", '\u{7}')
        );
    }
}
