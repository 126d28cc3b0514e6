//! What of a recorded step output (or checkpoint) a client may see. Some
//! outputs name files in the server's work directories, for the steps that
//! follow (`bundlePath` of the export's `bundle`, `schemaFile` and each
//! table's `file` of the rehydration's `validate`); those paths stay in the
//! event log, where the steps read them, and are removed from every value
//! the API shows.

use serde_json::Value;

/// The keys of step outputs whose values are server file-system paths.
pub const SERVER_PATH_KEYS: [&str; 3] = ["bundlePath", "schemaFile", "file"];

/// `value` without the [`SERVER_PATH_KEYS`], at any depth.
pub fn without_server_paths(mut value: Value) -> Value {
    strip(&mut value);
    value
}

fn strip(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !SERVER_PATH_KEYS.contains(&k.as_str()));
            map.values_mut().for_each(strip);
        }
        Value::Array(items) => items.iter_mut().for_each(strip),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_are_removed_at_any_depth() {
        let v = json!({
            "bundle": {"bundlePath": "/data/work/x/out/b.zip", "sizeBytes": 3},
            "validate": {"schemaFile": "/data/r/s.json", "tables": [{"table": "t", "file": "/data/r/t.ndjson", "rows": 1}],
                         "native": {"format": "sqlite", "file": "/data/r/d.sql"}},
        });
        assert_eq!(
            without_server_paths(v),
            json!({
                "bundle": {"sizeBytes": 3},
                "validate": {"tables": [{"table": "t", "rows": 1}], "native": {"format": "sqlite"}},
            })
        );
    }
}
