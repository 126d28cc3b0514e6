//! Import groups: the tables of a bundle in the order an import needs, with
//! the tables of each foreign-key cycle kept together so they load in one
//! transaction (constraints checked at its commit).
//!
//! Groups are the strongly connected components of the "references" graph
//! (Tarjan's algorithm), emitted referenced-first; within a group, and
//! between independent groups, the order of [`foreign_key_order`] holds, so
//! the result is deterministic.

use crate::ports::tenant::{foreign_key_order, TableInfo};
use std::collections::HashMap;

/// Table names grouped for import, referenced tables' groups first.
pub fn import_groups(tables: &[TableInfo], case_insensitive: bool) -> Vec<Vec<String>> {
    let ordered = foreign_key_order(tables.iter().collect::<Vec<_>>(), |t| *t, case_insensitive);
    let fold = |s: &str| {
        if case_insensitive {
            s.to_lowercase()
        } else {
            s.to_owned()
        }
    };
    let index: HashMap<String, usize> = ordered
        .iter()
        .enumerate()
        .map(|(i, t)| (fold(&t.name), i))
        .collect();
    let edges: Vec<Vec<usize>> = ordered
        .iter()
        .map(|t| {
            t.foreign_keys
                .iter()
                .filter_map(|fk| index.get(&fold(&fk.ref_table)).copied())
                .collect()
        })
        .collect();
    let components = tarjan(&edges);
    // Tarjan emits a component after every component it reaches, i.e.
    // referenced tables first. Order members by the foreign-key order.
    components
        .into_iter()
        .map(|mut c| {
            c.sort_unstable();
            c.into_iter().map(|i| ordered[i].name.clone()).collect()
        })
        .collect()
}

/// Strongly connected components, each emitted after those it points to.
fn tarjan(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct St<'a> {
        edges: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut St<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in &s.edges[v] {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(comp);
        }
    }
    let n = edges.len();
    let mut s = St {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::tenant::tests::table;

    #[test]
    fn referenced_first_and_cycles_together() {
        let tables = vec![
            table("order_items", &["orders", "products"]),
            table("orders", &["accounts"]),
            table("accounts", &["accounts"]),
            table("products", &[]),
            table("a", &["b"]),
            table("b", &["a", "accounts"]),
        ];
        let groups = import_groups(&tables, false);
        let pos = |t: &str| {
            groups
                .iter()
                .position(|g| g.iter().any(|x| x == t))
                .unwrap()
        };
        assert!(pos("accounts") < pos("orders"));
        assert!(pos("orders") < pos("order_items"));
        assert!(pos("products") < pos("order_items"));
        assert_eq!(pos("a"), pos("b"));
        assert!(pos("accounts") < pos("a"));
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), 6);
        assert_eq!(groups, import_groups(&tables, false), "deterministic");
    }
}
