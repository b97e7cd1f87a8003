//! `schemas/event.schema.json` and the emitted events agree: every kind validates, the schema names
//! exactly the kinds the code emits, and the validator rejects drift (extra, missing, mistyped fields).
//!
//! The validator implements the JSON Schema keywords the schema uses and fails on any other keyword, so
//! a schema edit cannot silently escape checking.

use std::collections::BTreeSet;
use std::time::Duration;

use genrun_progress::LogFormat;
use serde_json::{json, Value};

use crate::common::{all_kinds, capture, json_lines, no_secrets};

const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/event.schema.json");

fn schema() -> Value {
    serde_json::from_str(&std::fs::read_to_string(SCHEMA).unwrap()).unwrap()
}

/// Validates `v` against `s`; returns the first violation.
fn validate(root: &Value, s: &Value, v: &Value, at: &str) -> Result<(), String> {
    let obj = s
        .as_object()
        .ok_or(format!("{at}: schema is not an object"))?;
    for (k, rule) in obj {
        match k.as_str() {
            "$schema" | "title" | "description" | "$defs" => {}
            "$ref" => {
                let path = rule
                    .as_str()
                    .unwrap()
                    .strip_prefix("#/")
                    .ok_or(format!("non-local $ref {rule}"))?;
                let mut target = root;
                for part in path.split('/') {
                    target = target.get(part).ok_or(format!("dangling $ref {rule}"))?;
                }
                validate(root, target, v, at)?;
            }
            "type" => {
                let types: Vec<&str> = match rule {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
                    _ => return Err(format!("bad type {rule}")),
                };
                let ok = types.iter().any(|t| match *t {
                    "string" => v.is_string(),
                    "integer" => v.is_i64() || v.is_u64(),
                    "number" => v.is_number(),
                    "boolean" => v.is_boolean(),
                    "null" => v.is_null(),
                    "object" => v.is_object(),
                    "array" => v.is_array(),
                    _ => false,
                });
                if !ok {
                    return Err(format!("{at}: {v} is not {rule}"));
                }
            }
            "const" => {
                if v != rule {
                    return Err(format!("{at}: {v} != {rule}"));
                }
            }
            "minimum" => {
                if let Some(n) = v.as_f64() {
                    if n < rule.as_f64().unwrap() {
                        return Err(format!("{at}: {v} < {rule}"));
                    }
                }
            }
            "pattern" => {
                if let Some(s) = v.as_str() {
                    if !regex::Regex::new(rule.as_str().unwrap())
                        .unwrap()
                        .is_match(s)
                    {
                        return Err(format!("{at}: {s:?} does not match {rule}"));
                    }
                }
            }
            "format" => {
                if let (Some(s), "date-time") = (v.as_str(), rule.as_str().unwrap()) {
                    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                        .map_err(|e| format!("{at}: {s:?} is not a date-time: {e}"))?;
                }
            }
            "required" => {
                if let Some(o) = v.as_object() {
                    for r in rule.as_array().unwrap() {
                        if !o.contains_key(r.as_str().unwrap()) {
                            return Err(format!("{at}: missing {r}"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(o) = v.as_object() {
                    for (name, sub) in rule.as_object().unwrap() {
                        if let Some(val) = o.get(name) {
                            validate(root, sub, val, &format!("{at}.{name}"))?;
                        }
                    }
                }
            }
            "additionalProperties" => {
                assert_eq!(
                    rule,
                    &json!(false),
                    "only additionalProperties: false is supported"
                );
                if let Some(o) = v.as_object() {
                    let known = obj.get("properties").and_then(Value::as_object);
                    for name in o.keys() {
                        if !known.is_some_and(|p| p.contains_key(name)) {
                            return Err(format!("{at}: unexpected field {name}"));
                        }
                    }
                }
            }
            "items" => {
                if let Some(items) = v.as_array() {
                    for (i, item) in items.iter().enumerate() {
                        validate(root, rule, item, &format!("{at}[{i}]"))?;
                    }
                }
            }
            "prefixItems" => {
                if let Some(items) = v.as_array() {
                    for (i, (sub, item)) in rule.as_array().unwrap().iter().zip(items).enumerate() {
                        validate(root, sub, item, &format!("{at}[{i}]"))?;
                    }
                }
            }
            "minItems" | "maxItems" => {
                if let Some(items) = v.as_array() {
                    let n = rule.as_u64().unwrap() as usize;
                    if (k == "minItems" && items.len() < n) || (k == "maxItems" && items.len() > n)
                    {
                        return Err(format!("{at}: {} items violates {k} {n}", items.len()));
                    }
                }
            }
            "oneOf" => {
                let passing: Vec<usize> = rule
                    .as_array()
                    .unwrap()
                    .iter()
                    .enumerate()
                    .filter(|(_, sub)| validate(root, sub, v, at).is_ok())
                    .map(|(i, _)| i)
                    .collect();
                if passing.len() != 1 {
                    let errors: Vec<String> = rule
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(|sub| validate(root, sub, v, at).err())
                        .collect();
                    return Err(format!(
                        "{at}: {} oneOf branches match; errors: {errors:?}",
                        passing.len()
                    ));
                }
            }
            other => {
                panic!("schema keyword {other:?} is not supported by this validator: extend it")
            }
        }
    }
    Ok(())
}

fn emitted_events() -> Vec<Value> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (p, out) = capture("req-schema", LogFormat::Json, no_secrets());
        for k in all_kinds() {
            p.emit(k);
        }
        p.finish(Duration::from_secs(10)).await;
        json_lines(&out.text())
    })
}

#[test]
fn every_emitted_kind_validates_against_the_schema() {
    let root = schema();
    let events = emitted_events();
    for e in &events {
        if let Err(err) = validate(&root, &root, e, "event") {
            panic!("{err}\n{e}");
        }
    }
    // The schema has a branch for exactly the kinds the code emits.
    let emitted: BTreeSet<String> = events
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    let in_schema: BTreeSet<String> = root["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            b["$ref"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(emitted, in_schema);
    assert_eq!(emitted.len(), 19);
}

#[test]
fn schema_rejects_drift() {
    let root = schema();
    let good = emitted_events()
        .into_iter()
        .find(|e| e["kind"] == "tool")
        .unwrap();
    assert!(validate(&root, &root, &good, "event").is_ok());

    let mut extra = good.clone();
    extra["colour"] = json!("red");
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("target");
    let mut mistyped = good.clone();
    mistyped["seq"] = json!("7");
    let mut zero_seq = good.clone();
    zero_seq["seq"] = json!(0);
    let mut bad_ts = good.clone();
    bad_ts["ts"] = json!("2026-05-01 12:00:03");
    let mut unknown_kind = good.clone();
    unknown_kind["kind"] = json!("tool_use");
    for (what, bad) in [
        ("extra", extra),
        ("missing", missing),
        ("mistyped", mistyped),
        ("zero seq", zero_seq),
        ("bad ts", bad_ts),
        ("unknown kind", unknown_kind),
    ] {
        assert!(
            validate(&root, &root, &bad, "event").is_err(),
            "{what} passed: {bad}"
        );
    }
}
