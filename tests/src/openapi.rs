//! Just enough OpenAPI and JSON Schema (as the RunPod, GitHub and GitLab documents use them)
//! to check what a client sends and what a fake answers: operations found by method and
//! concrete path (`{param}` templates), path and query parameters, request bodies, and
//! response bodies per status; schemas with `$ref`, `allOf`, `oneOf`, `type`, `nullable`,
//! `enum`, `format: date-time`, `required`, `properties`, `additionalProperties: false`,
//! `unevaluatedProperties: false`, `items`, `pattern`, `minLength`.

use regex::Regex;
use serde_json::Value;

/// RunPod's OpenAPI document, vendored from `shared/runpod/openapi-v2.json`.
pub const DOCUMENT: &str = include_str!("../runpod/openapi-v2.json");

/// GitHub's description of the user SSH key endpoints, vendored from
/// `shared/github/openapi-user-keys.json` (a verbatim subset of github/rest-api-description).
pub const GITHUB_DOCUMENT: &str = include_str!("../github/openapi-user-keys.json");

/// GitLab's description of the user SSH key endpoints, vendored from
/// `shared/gitlab/openapi-user-keys.json` (a verbatim subset of GitLab's generated OpenAPI v3).
pub const GITLAB_DOCUMENT: &str = include_str!("../gitlab/openapi-user-keys.json");

pub struct Spec {
    doc: Value,
}

/// One operation of the document, matched against a concrete request path.
pub struct Operation<'a> {
    /// The path template, e.g. `/user/keys/{key_id}`.
    pub template: String,
    /// The method, lower-case.
    pub method: String,
    /// The values of the template's `{params}` in the concrete path.
    pub path_params: Vec<(String, String)>,
    op: &'a Value,
    item: &'a Value,
}

impl Spec {
    pub fn load() -> Self {
        Self::parse(DOCUMENT)
    }

    /// GitHub's user SSH key endpoints.
    pub fn github() -> Self {
        Self::parse(GITHUB_DOCUMENT)
    }

    /// GitLab's user SSH key endpoints.
    pub fn gitlab() -> Self {
        Self::parse(GITLAB_DOCUMENT)
    }

    fn parse(text: &str) -> Self {
        Spec {
            doc: serde_json::from_str(text).expect("vendored OpenAPI document parses"),
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

    /// The operation `method path` (a concrete path, no query) names, if the document has it.
    pub fn operation(&self, method: &str, path: &str) -> Option<Operation<'_>> {
        let method = method.to_ascii_lowercase();
        let segments: Vec<&str> = path.split('/').collect();
        let paths = self.doc.get("paths")?.as_object()?;
        paths.iter().find_map(|(template, item)| {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut params = Vec::new();
            for (t, s) in parts.iter().zip(&segments) {
                match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    Some(name) if !s.is_empty() => params.push((name.to_owned(), (*s).to_owned())),
                    Some(_) => return None,
                    None if t != s => return None,
                    None => {}
                }
            }
            let op = item.get(&method)?;
            Some(Operation {
                template: template.clone(),
                method: method.clone(),
                path_params: params,
                op,
                item,
            })
        })
    }

    fn parameters<'a>(&'a self, op: &Operation<'a>) -> Vec<&'a Value> {
        [op.item, op.op]
            .iter()
            .filter_map(|v| v.get("parameters").and_then(Value::as_array))
            .flatten()
            .map(|p| self.resolve(p))
            .collect()
    }

    /// Every way a request breaks the operation's description: its path and query
    /// parameters (`query` decoded, in order) and its JSON body (`None`: no body).
    pub fn check_request(
        &self,
        op: &Operation<'_>,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        let params = self.parameters(op);
        for p in &params {
            let name = p["name"].as_str().unwrap_or_default();
            let given = match p["in"].as_str() {
                Some("path") => op.path_params.iter().find(|(k, _)| k == name),
                Some("query") => query.iter().find(|(k, _)| k == name),
                _ => continue,
            };
            let Some((_, raw)) = given else {
                if p["required"] == Value::Bool(true) {
                    errors.push(format!("missing {} parameter '{name}'", p["in"]));
                }
                continue;
            };
            let schema = p.get("schema").unwrap_or(&Value::Null);
            let value = typed(self.resolve(schema), raw);
            self.check(schema, &value, &format!("parameter {name}"), &mut errors);
        }
        for (k, _) in query {
            let described = params
                .iter()
                .any(|p| p["in"] == "query" && p["name"].as_str() == Some(k.as_str()));
            if !described {
                errors.push(format!("query parameter '{k}' is not described"));
            }
        }
        let body_schema = op
            .op
            .pointer("/requestBody/content/application~1json/schema");
        match (body_schema, body) {
            (Some(schema), Some(body)) => self.check(schema, body, "$", &mut errors),
            (Some(_), None)
                if op.op.pointer("/requestBody/required") == Some(&Value::Bool(true)) =>
            {
                errors.push("missing request body".to_owned());
            }
            (None, Some(_)) => errors.push("no request body is described".to_owned()),
            _ => {}
        }
        errors
    }

    /// Whether the operation documents answers with `status`.
    pub fn documents_status(&self, op: &Operation<'_>, status: u16) -> bool {
        op.op
            .get("responses")
            .is_some_and(|r| r.get(status.to_string()).is_some() || r.get("default").is_some())
    }

    /// Every way an answer with a documented `status` and `body` breaks the description:
    /// a described JSON body must parse and match its schema; a `204` has no body.
    pub fn check_response(&self, op: &Operation<'_>, status: u16, body: &str) -> Vec<String> {
        let Some(responses) = op.op.get("responses") else {
            return vec![format!(
                "{} {} documents no responses",
                op.method, op.template
            )];
        };
        let Some(response) = responses
            .get(status.to_string())
            .or_else(|| responses.get("default"))
        else {
            return vec![format!(
                "status {status} is not documented for {} {}",
                op.method, op.template
            )];
        };
        let response = self.resolve(response);
        if status == 204 && !body.is_empty() {
            return vec!["a 204 answer has a body".to_owned()];
        }
        let Some(schema) = response.pointer("/content/application~1json/schema") else {
            return Vec::new();
        };
        match serde_json::from_str::<Value>(body) {
            Ok(value) => self.validate(schema, &value),
            Err(e) => vec![format!("the body is not JSON: {e}")],
        }
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
        if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
            return;
        }
        if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
            let matching = options
                .iter()
                .filter(|o| self.validate(o, value).is_empty())
                .count();
            if matching != 1 {
                errors.push(format!(
                    "{at}: matches {matching} of oneOf, not exactly one"
                ));
            }
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array)
            && !values.contains(value)
        {
            errors.push(format!("{at}: not one of {}", Value::Array(values.clone())));
        }
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
            self.check_object(schema, map, at, errors);
        }
        if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
            for (i, item) in items.iter().enumerate() {
                self.check(item_schema, item, &format!("{at}[{i}]"), errors);
            }
        }
        if let Value::String(s) = value {
            check_string(schema, s, at, errors);
        }
    }

    fn check_object(
        &self,
        schema: &Value,
        map: &serde_json::Map<String, Value>,
        at: &str,
        errors: &mut Vec<String>,
    ) {
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
}

/// The string keywords: `pattern`, `format: date-time`, `minLength`.
fn check_string(schema: &Value, s: &str, at: &str, errors: &mut Vec<String>) {
    if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
        let re = Regex::new(p).unwrap_or_else(|e| panic!("pattern {p} does not compile: {e}"));
        if !re.is_match(s) {
            errors.push(format!("{at}: does not match pattern {p}"));
        }
    }
    if schema.get("format").and_then(Value::as_str) == Some("date-time")
        && chrono::DateTime::parse_from_rfc3339(s).is_err()
    {
        errors.push(format!("{at}: not an RFC 3339 date-time"));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && (s.chars().count() as u64) < min
    {
        errors.push(format!("{at}: shorter than {min}"));
    }
}

/// A parameter's text as the JSON value its schema expects (an integer stays text, and so
/// fails the type check, when it does not parse).
fn typed(schema: &Value, raw: &str) -> Value {
    match schema.get("type").and_then(Value::as_str) {
        Some("integer") => raw
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(raw)),
        Some("boolean") => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::from(raw),
        },
        _ => Value::from(raw),
    }
}

/// Splits and percent-decodes a query string (`a=1&b=x%20y`).
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
