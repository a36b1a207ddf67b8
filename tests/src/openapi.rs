//! Just enough JSON Schema (as RunPod's OpenAPI document uses it) to check the request
//! bodies keyvault sends: `$ref`, `allOf`, `type`, `required`, `properties`,
//! `additionalProperties: false`, `unevaluatedProperties: false`, `items`, `pattern`,
//! `minLength`.

use regex::Regex;
use serde_json::Value;

/// RunPod's OpenAPI document, vendored from `shared/runpod/openapi-v2.json`.
pub const DOCUMENT: &str = include_str!("../runpod/openapi-v2.json");

pub struct Spec {
    doc: Value,
}

impl Spec {
    pub fn load() -> Self {
        Spec {
            doc: serde_json::from_str(DOCUMENT).expect("vendored OpenAPI document parses"),
        }
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let path = r.trim_start_matches('#');
                self.resolve(
                    self.doc
                        .pointer(path)
                        .unwrap_or_else(|| panic!("unresolvable $ref {r}")),
                )
            }
            None => schema,
        }
    }

    /// The request body schema of an operation.
    pub fn request_schema(&self, path: &str, method: &str) -> &Value {
        let op = self
            .doc
            .pointer(&format!(
                "/paths/{}/{method}",
                path.replace('~', "~0").replace('/', "~1")
            ))
            .unwrap_or_else(|| panic!("no {method} {path} in the OpenAPI document"));
        self.resolve(
            op.pointer("/requestBody/content/application~1json/schema")
                .unwrap_or_else(|| panic!("{method} {path} has no JSON body")),
        )
    }

    /// Every violation of `schema` by `value`, as `$.path: message`.
    pub fn validate(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(schema, value, "$", &mut errors);
        errors
    }

    /// Property names a schema (with its allOf parts) declares.
    fn declared(&self, schema: &Value, out: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            out.extend(props.keys().cloned());
        }
        for part in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.declared(part, out);
        }
    }

    fn check(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        for part in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.check(part, value, at, errors);
        }
        if let Some(t) = schema.get("type") {
            let types: Vec<&str> = match t {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let actual = match value {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            let ok = types
                .iter()
                .any(|t| *t == actual || (*t == "number" && actual == "integer"));
            if !ok {
                errors.push(format!(
                    "{at}: expected {}, got {actual}",
                    types.join(" or ")
                ));
                return;
            }
        }
        if let Value::Object(map) = value {
            for r in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(name) = r.as_str()
                    && !map.contains_key(name)
                {
                    errors.push(format!("{at}: missing property '{name}'"));
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            for (k, v) in map {
                if let Some(sub) = props.and_then(|p| p.get(k)) {
                    self.check(sub, v, &format!("{at}.{k}"), errors);
                }
            }
            let closed = schema.get("additionalProperties") == Some(&Value::Bool(false))
                || schema.get("unevaluatedProperties") == Some(&Value::Bool(false));
            if closed {
                let mut declared = Vec::new();
                self.declared(schema, &mut declared);
                for k in map.keys() {
                    if !declared.contains(k) {
                        errors.push(format!("{at}: additional properties '{k}' not allowed"));
                    }
                }
            }
        }
        if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
            for (i, item) in items.iter().enumerate() {
                self.check(item_schema, item, &format!("{at}[{i}]"), errors);
            }
        }
        if let Value::String(s) = value {
            if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
                let re =
                    Regex::new(p).unwrap_or_else(|e| panic!("pattern {p} does not compile: {e}"));
                if !re.is_match(s) {
                    errors.push(format!("{at}: does not match pattern {p}"));
                }
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && (s.chars().count() as u64) < min
            {
                errors.push(format!("{at}: shorter than {min}"));
            }
        }
    }
}
