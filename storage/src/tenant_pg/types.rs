//! PostgreSQL types, reduced to the few families the encoders tell apart.
//!
//! Export reads every value as PostgreSQL's own text output (the type's
//! output function, as `COPY ... TO STDOUT` prints it, see `copy_out.rs`), so the encoders only need to know
//! how to present that text: as a JSON number, a boolean, base64, an
//! ISO-8601 timestamp, a JSON array of elements, or a string. Domains are
//! presented as their base type, arrays by their element type; everything
//! without a special family (numeric, text, enums, uuid, json, inet, interval,
//! ranges, ...) is a string, which is exact because it is the server's text.
//!
//! Built-in types are recognised by OID: the OIDs below are fixed in
//! PostgreSQL's catalog (`pg_type.dat`) and never change between versions.

use std::collections::HashMap;

pub(crate) const BOOL: u32 = 16;
pub(crate) const BYTEA: u32 = 17;
pub(crate) const INT8: u32 = 20;
pub(crate) const INT2: u32 = 21;
pub(crate) const INT2VECTOR: u32 = 22;
pub(crate) const INT4: u32 = 23;
pub(crate) const OID: u32 = 26;
pub(crate) const OIDVECTOR: u32 = 30;
pub(crate) const FLOAT4: u32 = 700;
pub(crate) const FLOAT8: u32 = 701;
pub(crate) const DATE: u32 = 1082;
pub(crate) const TIMESTAMP: u32 = 1114;
pub(crate) const TIMESTAMPTZ: u32 = 1184;
pub(crate) const TIMETZ: u32 = 1266;

/// How a value's text is presented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    /// int2, int4, int8, oid: a JSON integer.
    Integer,
    /// real: a JSON number that reads back as the same `f32`.
    Float4,
    /// double precision: a JSON number that reads back as the same `f64`.
    Float8,
    Bool,
    /// Base64 in a `{"$base64": ...}` tag.
    Bytea,
    /// `timestamp`: ISO-8601 with a `T`, no zone.
    Timestamp,
    /// `timestamptz`: ISO-8601 with a `T` and `Z` (the snapshot runs in UTC).
    TimestampTz,
    /// `timetz`: the offset written `±HH:MM`.
    TimeTz,
    /// An array of `element`s; `delimiter` separates them in the text form.
    Array {
        element: Box<Family>,
        delimiter: u8,
    },
    /// Everything else: the text itself, as a string.
    Text,
}

/// What the catalog says about one type (`pg_type`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TypeRow {
    /// `typtype`: `b` base, `d` domain, `e` enum, `c` composite, `r` range, ...
    pub kind: u8,
    /// `typcategory`: `A` for arrays.
    pub category: u8,
    /// `typbasetype`: the type under a domain.
    pub base: u32,
    /// `typelem`: an array's element type.
    pub element: u32,
    /// `typdelim`: the element separator in an array of this type.
    pub delimiter: u8,
}

/// The types `oid` depends on that `types` does not know yet (domain bases
/// and array elements), so the caller can fetch them and try again.
pub(crate) fn missing_dependencies(oid: u32, types: &HashMap<u32, TypeRow>) -> Vec<u32> {
    let mut missing = Vec::new();
    let mut stack = vec![oid];
    let mut seen = Vec::new();
    while let Some(oid) = stack.pop() {
        if seen.contains(&oid) {
            continue;
        }
        seen.push(oid);
        match types.get(&oid) {
            None => missing.push(oid),
            Some(t) if t.kind == b'd' => stack.push(t.base),
            Some(t) if is_array(oid, t) => stack.push(t.element),
            Some(_) => {}
        }
    }
    missing
}

fn is_array(oid: u32, t: &TypeRow) -> bool {
    // int2vector and oidvector are category A with an element type, but
    // their text form is space-separated, not an array literal.
    t.category == b'A' && t.element != 0 && oid != INT2VECTOR && oid != OIDVECTOR
}

/// The family of `oid`, looking through domains. Unknown types (which
/// `missing_dependencies` would have reported) are presented as text.
pub(crate) fn family(oid: u32, types: &HashMap<u32, TypeRow>) -> Family {
    let oid = base_type(oid, types);
    if let Some(t) = types.get(&oid) {
        if is_array(oid, t) {
            let element_oid = base_type(t.element, types);
            let delimiter = types.get(&element_oid).map_or(b',', |e| e.delimiter);
            return Family::Array {
                element: Box::new(family(t.element, types)),
                delimiter,
            };
        }
    }
    match oid {
        INT2 | INT4 | INT8 | OID => Family::Integer,
        FLOAT4 => Family::Float4,
        FLOAT8 => Family::Float8,
        BOOL => Family::Bool,
        BYTEA => Family::Bytea,
        TIMESTAMP => Family::Timestamp,
        TIMESTAMPTZ => Family::TimestampTz,
        TIMETZ => Family::TimeTz,
        _ => Family::Text,
    }
}

/// `oid` with every domain peeled off.
pub(crate) fn base_type(mut oid: u32, types: &HashMap<u32, TypeRow>) -> u32 {
    // Domains cannot be cyclic, but a bound keeps a corrupt catalog from
    // looping forever.
    for _ in 0..64 {
        match types.get(&oid) {
            Some(t) if t.kind == b'd' && t.base != 0 => oid = t.base,
            _ => break,
        }
    }
    oid
}

/// Whether the analytics date filter can compare this type with timestamps.
pub(crate) fn is_temporal(oid: u32, types: &HashMap<u32, TypeRow>) -> bool {
    matches!(base_type(oid, types), DATE | TIMESTAMP | TIMESTAMPTZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: u8, category: u8, base: u32, element: u32) -> TypeRow {
        TypeRow {
            kind,
            category,
            base,
            element,
            delimiter: b',',
        }
    }

    #[test]
    fn domains_and_arrays_resolve_to_their_base_families() {
        let mut types = HashMap::new();
        types.insert(INT8, row(b'b', b'N', 0, 0));
        types.insert(1016, row(b'b', b'A', 0, INT8)); // int8[]
        types.insert(90_000, row(b'd', b'N', INT8, 0)); // domain over int8
        types.insert(90_001, row(b'd', b'A', 1016, 0)); // domain over int8[]
        types.insert(OIDVECTOR, row(b'b', b'A', 0, OID));
        assert_eq!(family(90_000, &types), Family::Integer);
        assert_eq!(
            family(90_001, &types),
            Family::Array {
                element: Box::new(Family::Integer),
                delimiter: b','
            }
        );
        assert_eq!(family(OIDVECTOR, &types), Family::Text);
        assert_eq!(missing_dependencies(90_001, &types), Vec::<u32>::new());
        assert_eq!(missing_dependencies(123, &types), vec![123]);
    }
}
