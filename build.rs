//! Rebuilds when a file is added to `static/`: rust-embed's derive alone only notices
//! edits to files it already embedded.

fn main() {
    println!("cargo:rerun-if-changed=static");
}
