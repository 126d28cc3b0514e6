//! The merge key of a table: which columns a merge matches rows by.
//!
//! A merge inserts the bundle's rows that are new and updates those whose
//! key the tenant already holds, so the key must identify one row: it must
//! be exactly the column set of one unique index (the primary key when the
//! request names none). Every tenant writer checks it here, the same way,
//! through the one thing databases differ in: how they compare and quote
//! identifiers ([`Identifiers`]). A wrong key is `merge_key_invalid`.

use super::tenant::TableInfo;
use super::PortError;

/// How a database names columns.
pub trait Identifiers {
    /// Whether `a` and `b` name the same column (SQLite compares ASCII
    /// letters case-insensitively; PostgreSQL compares stored names exactly).
    fn same_name(&self, a: &str, b: &str) -> bool;
    /// `name` as a quoted identifier, for messages.
    fn quote(&self, name: &str) -> String;
}

/// A checked merge key and the table's other unique column sets (which a
/// merge may still clash with).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeKey {
    pub key: Vec<String>,
    pub others: Vec<Vec<String>>,
}

/// Check `key` (empty: the primary key) for `table`, whose columns are
/// `columns`. With `tenant_column` (shared tables), the tenant column leads
/// the key unless it names it, since unique indexes there lead with it.
pub fn check_merge_key<'a>(
    ids: &impl Identifiers,
    table: &TableInfo,
    columns: impl IntoIterator<Item = &'a str> + Clone,
    key: &[String],
    tenant_column: Option<&str>,
) -> Result<MergeKey, PortError> {
    let invalid = |message: String| PortError::permanent("merge_key_invalid", message);
    let mut key: Vec<String> = if key.is_empty() {
        table.primary_key.clone()
    } else {
        key.to_vec()
    };
    if key.is_empty() {
        return Err(invalid(format!(
            "table {} has no primary key; name a merge key",
            ids.quote(&table.name)
        )));
    }
    if let Some(column) = tenant_column {
        if !key.iter().any(|c| ids.same_name(c, column)) {
            key.insert(0, column.to_owned());
        }
    }
    for column in &key {
        if !columns
            .clone()
            .into_iter()
            .any(|c| ids.same_name(c, column))
        {
            return Err(invalid(format!(
                "table {} has no column {}",
                ids.quote(&table.name),
                ids.quote(column)
            )));
        }
    }
    let same_set = |a: &[String], b: &[String]| {
        a.len() == b.len() && a.iter().all(|x| b.iter().any(|y| ids.same_name(x, y)))
    };
    let sets = table.unique_sets();
    if !sets.iter().any(|s| same_set(s, &key)) {
        return Err(invalid(format!(
            "no unique index of table {} is exactly ({})",
            ids.quote(&table.name),
            key.iter()
                .map(|c| ids.quote(c))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let others = sets.into_iter().filter(|s| !same_set(s, &key)).collect();
    Ok(MergeKey { key, others })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Exact;
    impl Identifiers for Exact {
        fn same_name(&self, a: &str, b: &str) -> bool {
            a == b
        }
        fn quote(&self, name: &str) -> String {
            format!("\"{name}\"")
        }
    }

    struct AnyCase;
    impl Identifiers for AnyCase {
        fn same_name(&self, a: &str, b: &str) -> bool {
            a.eq_ignore_ascii_case(b)
        }
        fn quote(&self, name: &str) -> String {
            format!("\"{name}\"")
        }
    }

    fn accounts() -> TableInfo {
        TableInfo {
            name: "accounts".into(),
            primary_key: vec!["id".into()],
            unique: vec![vec!["email".into()], vec!["region".into(), "code".into()]],
            ..TableInfo::default()
        }
    }

    const COLUMNS: &[&str] = &["id", "email", "region", "code", "name"];

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_primary_key_is_the_default_and_the_other_sets_are_returned() {
        let checked =
            check_merge_key(&Exact, &accounts(), COLUMNS.iter().copied(), &[], None).unwrap();
        assert_eq!(checked.key, keys(&["id"]));
        assert_eq!(
            checked.others,
            vec![keys(&["email"]), keys(&["region", "code"])]
        );
    }

    #[test]
    fn a_key_must_be_exactly_one_unique_set_in_any_order() {
        let cols = COLUMNS.iter().copied();
        let ok = check_merge_key(
            &Exact,
            &accounts(),
            cols.clone(),
            &keys(&["code", "region"]),
            None,
        )
        .unwrap();
        assert_eq!(ok.others, vec![keys(&["id"]), keys(&["email"])]);
        let err = check_merge_key(&Exact, &accounts(), cols.clone(), &keys(&["region"]), None)
            .unwrap_err();
        assert_eq!(err.code, "merge_key_invalid");
        assert!(err.message.contains("is exactly (\"region\")"), "{err}");
        let err = check_merge_key(&Exact, &accounts(), cols, &keys(&["nope"]), None).unwrap_err();
        assert_eq!(err.message, "table \"accounts\" has no column \"nope\"");
    }

    #[test]
    fn names_compare_as_the_database_compares_them() {
        let cols = COLUMNS.iter().copied();
        let key = keys(&["EMAIL"]);
        assert!(check_merge_key(&Exact, &accounts(), cols.clone(), &key, None).is_err());
        let checked = check_merge_key(&AnyCase, &accounts(), cols, &key, None).unwrap();
        assert_eq!(checked.key, key);
        assert_eq!(
            checked.others,
            vec![keys(&["id"]), keys(&["region", "code"])]
        );
    }

    #[test]
    fn a_shared_table_leads_the_key_with_the_tenant_column() {
        let mut shared = accounts();
        shared.primary_key = keys(&["tenant_id", "id"]);
        shared.unique = vec![keys(&["tenant_id", "email"])];
        let cols = ["tenant_id", "id", "email"];
        let checked =
            check_merge_key(&Exact, &shared, cols, &keys(&["email"]), Some("tenant_id")).unwrap();
        assert_eq!(checked.key, keys(&["tenant_id", "email"]));
        let named = check_merge_key(
            &Exact,
            &shared,
            cols,
            &keys(&["tenant_id", "id"]),
            Some("tenant_id"),
        )
        .unwrap();
        assert_eq!(named.key, keys(&["tenant_id", "id"]));
        let table = TableInfo {
            primary_key: vec![],
            ..shared
        };
        let err = check_merge_key(&Exact, &table, cols, &[], Some("tenant_id")).unwrap_err();
        assert!(err.message.contains("has no primary key"), "{err}");
    }
}
