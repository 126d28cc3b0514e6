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
