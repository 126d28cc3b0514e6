//! SQL text both tenant databases share. Identifier quoting is standard
//! SQL, the same in SQLite and PostgreSQL, so it is written once here.

/// Quote an SQL identifier: wrap it in double quotes and double any
/// embedded double quote. Names come from introspection or configuration,
/// never from a request, but they are tenant-controlled data all the same,
/// so they are spliced only through here, never raw.
pub(crate) fn quote_ident(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for ch in name.chars() {
        if ch == '"' {
            quoted.push('"');
        }
        quoted.push(ch);
    }
    quoted.push('"');
    quoted
}

/// `a.c1 = b.c1 AND ...` over `columns`.
pub(crate) fn equal_on(a: &str, b: &str, columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| format!("{a}.{q} = {b}.{q}", q = quote_ident(c)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// A merge preview's conflict test of one staged row (alias `staged`):
/// a row of `target` (alias `t`) equals it on one of the `others` unique
/// sets but is not the row its merge `key` matches, so the merge would
/// break that unique index. `same` is the dialect's null-safe equality
/// (`IS` in SQLite, `IS NOT DISTINCT FROM` in PostgreSQL).
pub(crate) fn clashes<S: AsRef<[String]>>(
    target: &str,
    staged: &str,
    key: &[String],
    others: &[S],
    same: &str,
) -> String {
    let same_key = key
        .iter()
        .map(|c| format!("t.{q} {same} {staged}.{q}", q = quote_ident(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    others
        .iter()
        .map(|set| {
            format!(
                "EXISTS (SELECT 1 FROM {target} AS t WHERE {} AND NOT ({same_key}))",
                equal_on("t", staged, set.as_ref())
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_inside_every_condition() {
        let cols = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            equal_on("t", "s", &cols(&["id", "a\"b"])),
            r#"t."id" = s."id" AND t."a""b" = s."a""b""#
        );
        assert_eq!(
            clashes(
                "x",
                "s",
                &cols(&["id"]),
                &[cols(&["email"]), cols(&["a", "b"])],
                "IS"
            ),
            concat!(
                r#"EXISTS (SELECT 1 FROM x AS t WHERE t."email" = s."email" AND NOT (t."id" IS s."id"))"#,
                r#" OR EXISTS (SELECT 1 FROM x AS t WHERE t."a" = s."a" AND t."b" = s."b" AND NOT (t."id" IS s."id"))"#
            )
        );
    }
}
