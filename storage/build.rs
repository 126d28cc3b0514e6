//! Rebuild when a migration changes: `embed_migrations!` reads the
//! `migrations/` folders at compile time, and Cargo would not otherwise know
//! that a new migration folder invalidates the build.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
