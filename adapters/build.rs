//! `sqlx::migrate!` embeds the migrations when the crate compiles; without this, a new or
//! changed migration file would not rebuild the crate that embeds them.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
