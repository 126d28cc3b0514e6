//! Whether the bundle's schema (`database/schema.json`) fits the tenant's
//! schema as it is now.
//!
//! Tables and columns are compared by exact name. Within one engine a
//! column's declared type must be equal (case and spacing aside); between
//! engines (a lite bundle of SQLite into PostgreSQL) declared types cannot
//! be compared, and the row check against the target's types decides. A
//! native dump restores only into its own engine. With a partial set only
//! the chosen tables are compared; in `replace` mode a table that is not
//! chosen must not reference a chosen one, or deleting the chosen table's
//! rows would orphan its rows (`partial_fk_closure`). `merge` deletes
//! nothing, so it has no closure to keep.
//!
//! What ferry cannot restore is refused here, before anything changes,
//! rather than half-restored: a column of type `oid` or `lo` holds the ids
//! of PostgreSQL large objects, whose contents live outside the table and
//! are in no bundle (`large_objects_unsupported`).

use super::Rejection;
use crate::ports::tenant::{SchemaInfo, TableInfo};

fn normalized(data_type: &str) -> String {
    data_type
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

/// Column types that hold large-object ids (`oid`, and the `lo` extension's
/// domain over it).
fn large_object_type(data_type: &str) -> bool {
    let t = normalized(data_type);
    let t = t.rsplit('.').next().unwrap_or(&t);
    matches!(t, "oid" | "lo" | "\"lo\"")
}

fn compare_table(
    bundle: &TableInfo,
    target: &TableInfo,
    same_engine: bool,
) -> Result<(), Rejection> {
    let t = &bundle.name;
    if let Some(c) = target
        .columns
        .iter()
        .find(|c| large_object_type(&c.data_type))
    {
        return Err(Rejection::new(
            "large_objects_unsupported",
            format!(
                "column {t}.{} holds large object ids ({}); their contents are in no bundle, \
                 so ferry cannot restore this table",
                c.name, c.data_type
            ),
        ));
    }
    for c in &target.columns {
        if !bundle.columns.iter().any(|b| b.name == c.name) {
            return Err(Rejection::new(
                "schema_column_missing",
                format!("column {t}.{} of the tenant is not in the bundle", c.name),
            ));
        }
    }
    for b in &bundle.columns {
        let Some(c) = target.columns.iter().find(|c| c.name == b.name) else {
            return Err(Rejection::new(
                "schema_column_extra",
                format!("column {t}.{} of the bundle is not in the tenant", b.name),
            ));
        };
        if same_engine && normalized(&b.data_type) != normalized(&c.data_type) {
            return Err(Rejection::new(
                "schema_type_mismatch",
                format!(
                    "column {t}.{} is {} in the bundle but {} in the tenant",
                    b.name, b.data_type, c.data_type
                ),
            ));
        }
    }
    if bundle.primary_key != target.primary_key {
        return Err(Rejection::new(
            "schema_key_mismatch",
            format!(
                "the primary key of {t} is ({}) in the bundle but ({}) in the tenant",
                bundle.primary_key.join(", "),
                target.primary_key.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Check `bundle` against `target` for the tables in scope.
pub(super) fn compatible(
    bundle: &SchemaInfo,
    target: &SchemaInfo,
    chosen: Option<&[String]>,
    merge: bool,
    native: bool,
) -> Result<(), Rejection> {
    let same_engine = bundle.engine == target.engine;
    if native && !same_engine {
        return Err(Rejection::new(
            "engine_mismatch",
            format!(
                "a native {} dump cannot be restored into {}",
                bundle.engine, target.engine
            ),
        ));
    }
    let in_scope = |name: &str| chosen.is_none_or(|c| c.iter().any(|t| t == name));
    if chosen.is_none() {
        if let Some(t) = target
            .tables
            .iter()
            .find(|t| bundle.table(&t.name).is_none())
        {
            return Err(Rejection::new(
                "schema_table_missing",
                format!("table {:?} of the tenant is not in the bundle", t.name),
            ));
        }
    }
    for b in bundle.tables.iter().filter(|t| in_scope(&t.name)) {
        let Some(t) = target.table(&b.name) else {
            return Err(Rejection::new(
                "schema_table_extra",
                format!("table {:?} of the bundle is not in the tenant", b.name),
            ));
        };
        compare_table(b, t, same_engine)?;
    }
    if merge {
        return Ok(());
    }
    for outside in target.tables.iter().filter(|t| !in_scope(&t.name)) {
        for fk in &outside.foreign_keys {
            if in_scope(&fk.ref_table) {
                return Err(Rejection::new(
                    "partial_fk_closure",
                    format!(
                        "{} references {}: replacing {} alone would orphan rows of {}; choose both",
                        outside.name, fk.ref_table, fk.ref_table, outside.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::tenant::ColumnInfo;

    fn table(columns: &[(&str, &str)]) -> TableInfo {
        TableInfo {
            name: "docs".into(),
            columns: columns
                .iter()
                .map(|(name, data_type)| ColumnInfo {
                    name: (*name).into(),
                    data_type: (*data_type).into(),
                    nullable: true,
                    ..Default::default()
                })
                .collect(),
            primary_key: vec!["id".into()],
            foreign_keys: vec![],
            ..Default::default()
        }
    }

    #[test]
    fn large_object_columns_are_refused_before_anything_changes() {
        for ty in ["oid", "lo", "public.lo", "OID"] {
            let t = table(&[("id", "bigint"), ("body", ty)]);
            let err = compare_table(&t, &t, true).unwrap_err();
            assert_eq!(err.code, "large_objects_unsupported", "{ty}");
            assert!(err.message.contains("docs.body"), "{}", err.message);
        }
        for ty in ["bigint", "text", "bytea", "regclass", "oidvector"] {
            let t = table(&[("id", "bigint"), ("body", ty)]);
            assert!(compare_table(&t, &t, true).is_ok(), "{ty}");
        }
    }
}
