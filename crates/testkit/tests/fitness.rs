//! Fitness tests: the architecture `docs/ARCHITECTURE.md` describes, held
//! by reading the workspace's own files. Each names what it found, so a
//! failure says where the shape broke.
//!
//! (Two more live beside what they guard: every route is in the OpenAPI
//! document, `crates/http/tests/conventions.rs`; every `*_sealed` column is
//! rotated, `crates/store/tests/accounts_conformance.rs`.)

use std::fs;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("crates/testkit is two levels below the workspace")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `.rs` files under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The code of a file without its comments (what it does, not what it says).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split("//").next().unwrap_or("")))
}

fn crate_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(workspace().join("crates"))
        .expect("crates/")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn handlers_use_neither_the_store_nor_the_clock() {
    // Handlers translate: extract → one service call → map the result.
    // Store rows, store calls and clock reads belong to the services; ids
    // are parsed by `ApiPath`, callers come from `Authenticated`.
    let forbidden = [
        "Path<String>",
        "Extension<",
        "paybridge_store",
        ".store",
        "clock",
        "Stored",
        "Instant::now",
        "SystemTime",
        "OffsetDateTime::now",
    ];
    let mut found = Vec::new();
    for file in rust_files(&workspace().join("crates/http/src/routes")) {
        let text = read(&file);
        for (n, line) in code_lines(&text) {
            for word in forbidden {
                if line.contains(word) {
                    found.push(format!("{}:{n}: {word}", file.display()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "routes reach past the services:\n{}",
        found.join("\n")
    );
}

#[test]
fn services_write_events_only_as_typed_payloads() {
    // Every event a role writes is a `domain::happened::Happened`: its
    // payload is a typed struct and `Happened::topic` picks its topic, so no
    // service chooses a topic or builds a payload by hand.
    let mut found = Vec::new();
    for krate in ["wallet", "issuer", "kernel"] {
        for file in rust_files(&workspace().join("crates").join(krate).join("src")) {
            for (n, line) in code_lines(&read(&file)) {
                if line.contains("NewEvent::of(") || line.contains("NewEvent::new(") {
                    found.push(format!("{}:{n}", file.display()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "events built by hand (use Happened): {found:#?}"
    );
}

#[test]
fn domain_depends_on_no_crate_of_ours() {
    let manifest = read(&workspace().join("crates/domain/Cargo.toml"));
    let ours: Vec<&str> = manifest
        .lines()
        .filter(|l| l.trim_start().starts_with("paybridge-"))
        .collect();
    assert!(ours.is_empty(), "domain must stay pure: {ours:?}");
    for file in rust_files(&workspace().join("crates/domain/src")) {
        let text = read(&file);
        for (n, line) in code_lines(&text) {
            assert!(
                !line.contains("paybridge_"),
                "{}:{n} names a crate of ours",
                file.display()
            );
        }
    }
}

#[test]
fn the_migration_folders_differ_only_in_the_documented_type_words() {
    let root = workspace().join("crates/store/migrations");
    let names = |dialect: &str| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(root.join(dialect))
            .expect("a migrations folder")
            .map(|e| {
                e.expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names("sqlite"),
        names("postgres"),
        "the same migrations, by name"
    );
    let mut differences = Vec::new();
    for name in names("sqlite") {
        let sqlite = read(&root.join("sqlite").join(&name));
        let mut postgres = read(&root.join("postgres").join(&name));
        for (lite, pg) in paybridge_store::db::DIALECT_TYPE_WORDS {
            postgres = postgres.replace(pg, lite);
        }
        for (n, (a, b)) in sqlite.lines().zip(postgres.lines()).enumerate() {
            if a != b {
                differences.push(format!("{name}:{}: `{a}` vs `{b}`", n + 1));
            }
        }
        if sqlite.lines().count() != postgres.lines().count() {
            differences.push(format!("{name}: different lengths"));
        }
    }
    assert!(
        differences.is_empty(),
        "the dialects differ beyond DIALECT_TYPE_WORDS:\n{}",
        differences.join("\n")
    );
}

/// The modules a crate root declares.
fn declared_modules(root: &str) -> Vec<String> {
    root.lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("mod "))?;
            rest.strip_suffix(';').map(str::to_owned)
        })
        .collect()
}

#[test]
fn every_crate_root_lists_its_modules() {
    let mut missing = Vec::new();
    for dir in crate_dirs() {
        for root in ["src/lib.rs", "src/main.rs"] {
            let path = dir.join(root);
            if !path.exists() {
                continue;
            }
            let text = read(&path);
            let docs: String = text
                .lines()
                .filter(|l| l.starts_with("//!"))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(!docs.is_empty(), "{} has no //! docs", path.display());
            for m in declared_modules(&text) {
                if !docs.contains(&format!("[`{m}`]")) && !docs.contains(&format!("`{m}`")) {
                    missing.push(format!("{}: {m}", path.display()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "modules missing from their crate's docs:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_module_says_what_it_is() {
    let mut bare = Vec::new();
    for dir in crate_dirs() {
        for file in rust_files(&dir.join("src")) {
            let text = read(&file);
            if !text.trim_start().starts_with("//!") {
                bare.push(file.display().to_string());
            }
        }
    }
    assert!(
        bare.is_empty(),
        "modules without a //! doc:\n{}",
        bare.join("\n")
    );
}

#[test]
fn the_architecture_doc_names_every_crate() {
    let doc = read(&workspace().join("docs/ARCHITECTURE.md"));
    for dir in crate_dirs() {
        let manifest = read(&dir.join("Cargo.toml"));
        let name = manifest
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|l| l.strip_suffix('"'))
            .expect("a package name");
        assert!(
            doc.contains(&format!("`{name}`")),
            "docs/ARCHITECTURE.md does not name `{name}`"
        );
    }
}

#[test]
fn the_docs_link_only_to_files_in_the_repository() {
    let root = workspace();
    let mut docs = vec![root.join("README.md")];
    docs.extend(
        fs::read_dir(root.join("docs"))
            .expect("docs/")
            .map(|e| e.expect("an entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "md")),
    );
    let mut broken = Vec::new();
    for doc in docs {
        let text = read(&doc);
        let base = doc.parent().expect("a folder");
        for (i, _) in text.match_indices("](") {
            let target = &text[i + 2..];
            let target = &target[..target.find(')').unwrap_or(target.len())];
            let target = target.split('#').next().unwrap_or("");
            if target.is_empty() {
                continue; // an anchor on the same page
            }
            if target.contains("://") || target.starts_with("mailto:") {
                broken.push(format!(
                    "{}: links outside the repository: {target}",
                    doc.display()
                ));
            } else {
                match base.join(target).canonicalize() {
                    Ok(file) if file.starts_with(root.canonicalize().expect("the root")) => {}
                    Ok(_) => broken.push(format!(
                        "{}: links outside the repository: {target}",
                        doc.display()
                    )),
                    Err(_) => broken.push(format!("{}: no such file: {target}", doc.display())),
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}
