//! The text of an error for an operator: the whole chain of causes, since
//! the innermost one ("connection refused") is what helps, not a client
//! library's generic outer text.

/// `outer: cause: cause ...`, each text once (wrappers often repeat their
/// cause's text).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}
