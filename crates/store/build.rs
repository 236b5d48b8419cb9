// `sqlx::migrate!` embeds the migrations at compile time: rebuild when one
// is added or changed (cargo does not see files a macro reads).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
