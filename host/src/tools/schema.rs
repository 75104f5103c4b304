//! The schemas the tools show, made from schemars' schemas of the argument types (so they
//! cannot drift from the parser): inlined, since several clients cannot follow `$ref`, and
//! trimmed to what a client validates and an agent reads.
//!
//! `tools/list` gets [`listed`]: each description's first paragraph and, inside an object
//! argument, only the options the tool names; deeper objects keep their type alone. Help gets
//! [`options`]: every option with its whole description.

use schemars::JsonSchema;
use serde_json::{Map, Value};

/// The options a tool's schema lists inside its object arguments, e.g.
/// `("trainer", &["max_epochs", "seed"])`; the others stay accepted, and help describes them.
pub type Shown = [(&'static str, &'static [&'static str])];

/// Deepest `$ref` chain followed; the argument types have no recursive ones.
const MAX_REF_DEPTH: usize = 16;

/// The input schema of a tool whose arguments are `T`, for `tools/list` (without a
/// description of its own: the tool's says it).
pub fn listed<T: JsonSchema>(shown: &Shown) -> Value {
    let mut schema = merge_variants(tidy(inlined::<T>()));
    brief(&mut schema, Level::Arguments, shown);
    if let Value::Object(root) = &mut schema {
        root.shift_remove("description");
    }
    schema
}

/// Every property of `T` (an object type) with its whole schema and description, for help.
pub fn options<T: JsonSchema>() -> Map<String, Value> {
    let mut schema = tidy(inlined::<T>());
    whole_descriptions(&mut schema);
    match schema {
        Value::Object(mut object) => match object.shift_remove("properties") {
            Some(Value::Object(properties)) => properties,
            _ => Map::new(),
        },
        _ => Map::new(),
    }
}

/// The JSON Schema of `T` with every `$ref` replaced by its definition, of `"type":
/// "object"` as MCP requires of tool arguments.
fn inlined<T: JsonSchema>() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null);
    let Value::Object(root) = &mut schema else {
        return serde_json::json!({"type": "object"});
    };
    let definitions = match root.shift_remove("$defs") {
        Some(Value::Object(definitions)) => definitions,
        _ => Map::new(),
    };
    root.entry("type").or_insert_with(|| Value::from("object"));
    resolve(schema, &definitions, 0)
}

/// `node` with each `{"$ref": "#/$defs/X", ...}` replaced by `X`'s schema, the referring
/// node's own keys (its description) taking precedence.
fn resolve(node: Value, definitions: &Map<String, Value>, depth: usize) -> Value {
    match node {
        Value::Object(mut object) => {
            if let Some(Value::String(reference)) = object.shift_remove("$ref") {
                let name = reference.rsplit('/').next().unwrap_or_default();
                let target = definitions.get(name).filter(|_| depth < MAX_REF_DEPTH);
                if let Some(Value::Object(target)) = target {
                    let mut merged = target.clone();
                    merged.extend(object);
                    return resolve(Value::Object(merged), definitions, depth + 1);
                }
            }
            Value::Object(
                object
                    .into_iter()
                    .map(|(key, value)| (key, resolve(value, definitions, depth)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| resolve(item, definitions, depth))
                .collect(),
        ),
        other => other,
    }
}

/// `node` without what neither clients nor agents use (titles, Rust integer formats), with
/// optional values as their type alone (an absent argument is how a request leaves one out)
/// and unit enums as `enum` lists.
fn tidy(node: Value) -> Value {
    let mut object = match node {
        Value::Object(object) => object,
        Value::Array(items) => return Value::Array(items.into_iter().map(tidy).collect()),
        other => return other,
    };
    for key in ["$schema", "title", "format"] {
        object.shift_remove(key);
    }
    if object.get("items") == Some(&Value::Bool(true)) {
        object.shift_remove("items");
    }
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|t| t != "null");
        if let [single] = types.as_slice() {
            let single = single.clone();
            object.insert("type".into(), single);
        }
    }
    if let Some(Value::Array(alternatives)) = object.get_mut("anyOf") {
        alternatives.retain(|a| a.get("type") != Some(&Value::from("null")));
        if let [single] = alternatives.as_slice()
            && let Value::Object(single) = single.clone()
        {
            object.shift_remove("anyOf");
            for (key, value) in single {
                object.entry(key).or_insert(value);
            }
        }
    }
    if let Some(values) = object.get("oneOf").and_then(string_constants) {
        object.shift_remove("oneOf");
        object.insert("type".into(), Value::from("string"));
        object.insert("enum".into(), Value::from(values));
    }
    Value::Object(
        object
            .into_iter()
            .map(|(key, value)| (key, tidy(value)))
            .collect(),
    )
}

/// The values of a `oneOf` whose alternatives are all string constants.
fn string_constants(alternatives: &Value) -> Option<Vec<Value>> {
    alternatives
        .as_array()?
        .iter()
        .map(|a| match (a.get("type"), a.get("const")) {
            (Some(t), Some(c @ Value::String(_))) if t == "string" => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// A schema whose root is a `oneOf` of objects told apart by a constant tag (an internally
/// tagged enum, such as `lightning.checkpoint`'s `action`) as one object: the tag an `enum`
/// described by the root's description, every variant's properties, required what all
/// variants require. Clients show and validate
/// a flat object more reliably than a root `oneOf`.
fn merge_variants(schema: Value) -> Value {
    let Value::Object(mut root) = schema else {
        return schema;
    };
    let Some(Value::Array(variants)) = root.shift_remove("oneOf") else {
        return Value::Object(root);
    };
    let mut properties = Map::new();
    let mut tags: Map<String, Value> = Map::new();
    let mut required: Option<Vec<Value>> = None;
    for variant in &variants {
        for (name, property) in variant
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if let Some(tag) = property.get("const") {
                let values = tags
                    .entry(name.clone())
                    .or_insert_with(|| Value::Array(vec![]));
                if let Value::Array(values) = values {
                    values.push(tag.clone());
                }
            }
            properties
                .entry(name.clone())
                .or_insert_with(|| property.clone());
        }
        let names = variant
            .get("required")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        required = Some(match required {
            None => names,
            Some(so_far) => so_far.into_iter().filter(|n| names.contains(n)).collect(),
        });
    }
    // The tag says what the variants are; the root's description says what the tag chooses.
    let description = root.shift_remove("description").unwrap_or(Value::Null);
    for (name, values) in tags {
        properties.insert(
            name,
            serde_json::json!({"description": description, "type": "string", "enum": values}),
        );
    }
    root.insert("properties".into(), Value::Object(properties));
    root.insert("required".into(), Value::from(required.unwrap_or_default()));
    root.insert("additionalProperties".into(), Value::Bool(false));
    Value::Object(root)
}

/// How deep a schema node lies in a tool's arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    /// The arguments object itself.
    Arguments,
    /// One argument (`trainer`), or an alternative or item of one.
    Argument,
    /// An option of an object argument (`trainer.max_epochs`).
    Option,
}

/// Trims `node`, at `level`, to its listing: first-paragraph descriptions, the options
/// `shown` names inside object arguments, the type alone below them.
fn brief(node: &mut Value, level: Level, shown: &Shown) {
    let Value::Object(object) = node else {
        return;
    };
    if let Some(Value::String(description)) = object.get_mut("description") {
        *description = first_paragraph(description);
    }
    if let Some(Value::Object(properties)) = object.get_mut("properties") {
        match level {
            Level::Arguments => {
                for (name, argument) in properties.iter_mut() {
                    let names = shown
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, names)| *names);
                    brief_argument(argument, names, shown);
                }
            }
            Level::Argument | Level::Option => {
                for option in properties.values_mut() {
                    brief(option, Level::Option, shown);
                }
            }
        }
    }
    if level == Level::Option {
        for key in ["properties", "required", "additionalProperties", "items"] {
            object.shift_remove(key);
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alternatives)) = object.get_mut(key) {
            for alternative in alternatives.iter_mut() {
                brief(alternative, level, shown);
                if let Value::Object(alternative) = alternative {
                    alternative.shift_remove("description");
                }
            }
            alternatives.dedup();
            if let [single] = alternatives.as_slice()
                && let Value::Object(single) = single.clone()
            {
                object.shift_remove(key);
                for (k, v) in single {
                    object.entry(k).or_insert(v);
                }
            }
        }
    }
    if level != Level::Option
        && let Some(items) = object.get_mut("items")
    {
        brief(items, level, shown);
    }
}

/// Trims one argument, keeping only the options `names` lists (all when `None`); a trimmed
/// object accepts the options it no longer lists.
fn brief_argument(argument: &mut Value, names: Option<&[&str]>, shown: &Shown) {
    if let (Some(names), Value::Object(object)) = (names, &mut *argument) {
        if let Some(Value::Object(properties)) = object.get_mut("properties") {
            properties.retain(|name, _| names.contains(&name.as_str()));
        }
        object.shift_remove("additionalProperties");
    }
    brief(argument, Level::Argument, shown);
}

/// The first paragraph of a doc comment, on one line.
fn first_paragraph(text: &str) -> String {
    let paragraph = text.split("\n\n").next().unwrap_or_default();
    paragraph.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every description in `node` with its lines joined and its paragraphs kept apart.
fn whole_descriptions(node: &mut Value) {
    match node {
        Value::Object(object) => {
            for (key, value) in object.iter_mut() {
                match value {
                    Value::String(text) if key == "description" => {
                        *text = text
                            .split("\n\n")
                            .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
                            .collect::<Vec<_>>()
                            .join("\n\n");
                    }
                    other => whole_descriptions(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_descriptions),
        _ => {}
    }
}

/// The options `shown` names that `listed` lacks: each is a misspelling.
#[cfg(test)]
pub fn missing(listed: &Value, shown: &Shown) -> Vec<String> {
    shown
        .iter()
        .flat_map(|(argument, names)| names.iter().map(move |name| format!("{argument}.{name}")))
        .filter(|path| {
            let pointer = format!("/properties/{}", path.replace('.', "/properties/"));
            listed.pointer(&pointer).is_none()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemars::JsonSchema;
    use serde::Deserialize;
    use serde_json::json;

    /// An option group.
    #[allow(dead_code)]
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Group {
        /// How many.
        ///
        /// A long explanation that only help shows.
        count: Option<u32>,
        /// Which way.
        way: Option<Way>,
        /// A nested group.
        nested: Option<Vec<Tagged>>,
    }

    /// A direction.
    #[allow(dead_code)]
    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "lowercase")]
    enum Way {
        /// Up.
        Up,
        /// Down.
        Down,
    }

    /// The kind.
    #[allow(dead_code)]
    #[derive(Deserialize, JsonSchema)]
    #[serde(tag = "kind", rename_all = "lowercase")]
    enum Tagged {
        /// One.
        One {
            /// A.
            a: u32,
        },
        /// Two.
        Two {
            /// B.
            b: Option<String>,
        },
    }

    /// Arguments.
    #[allow(dead_code)]
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Arguments {
        /// The group.
        group: Option<Group>,
        /// A name.
        name: String,
    }

    #[test]
    fn a_listing_is_inline_with_first_paragraphs_and_the_options_shown() {
        let listed = listed::<Arguments>(&[("group", &["count", "nested"])]);
        assert_eq!(
            listed,
            json!({
                "type": "object",
                "properties": {
                    "group": {
                        "description": "The group.",
                        "type": "object",
                        "properties": {
                            "count": {"description": "How many.", "type": "integer", "minimum": 0},
                            "nested": {"description": "A nested group.", "type": "array"},
                        },
                    },
                    "name": {"description": "A name.", "type": "string"},
                },
                "additionalProperties": false,
                "required": ["name"],
            })
        );
    }

    #[test]
    fn help_options_keep_whole_descriptions_and_enums() {
        let options = options::<Group>();
        assert_eq!(
            options.get("count").and_then(|c| c.get("description")),
            Some(&json!(
                "How many.\n\nA long explanation that only help shows."
            ))
        );
        assert_eq!(
            options.get("way"),
            Some(&json!({"description": "Which way.", "type": "string", "enum": ["up", "down"]}))
        );
        let nested = options
            .get("nested")
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(!nested.contains("$ref"), "{nested}");
        assert!(nested.contains("\"a\""), "{nested}");
    }

    #[test]
    fn a_root_of_tagged_variants_becomes_one_object() {
        let listed = listed::<Tagged>(&[]);
        assert_eq!(
            listed.pointer("/properties/kind"),
            Some(&json!({"description": "The kind.", "type": "string", "enum": ["one", "two"]}))
        );
        assert_eq!(listed.get("required"), Some(&json!(["kind"])));
        assert!(
            listed.pointer("/properties/a").is_some() && listed.pointer("/properties/b").is_some()
        );
    }
}
