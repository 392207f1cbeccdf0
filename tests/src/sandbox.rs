//! The Nix build runs this suite without root and without /bin/bash, /bin/true, /usr/bin or /lib64
//! (`cargo xtask test --nix-sandbox`). Masking files cannot hide /usr on a merged-/usr machine, so
//! this check reads the tests instead: no string literal that the Nix build's tests run may name
//! such a path. Tests (and helpers used only by them) that need root are named `root_*`, those
//! that need a host program or library at a fixed path `host_*`; both are left out of that mode,
//! and their functions are exempt here.

use std::path::Path;

/// Paths the Nix build sandbox does not have. (`/bin/sh` it has; `/tmp` Nix creates.)
const HOST_ONLY: &[&str] =
    &["/bin/bash", "/bin/true", "/usr/bin", "/usr/lib", "/lib64", "/lib/x86_64-linux-gnu", "/run/current-system"];

/// Paths a test may pass as values that nothing opens: the shim's compiled-in default, checked to
/// be reported as missing; a script interpreter that does not exist; the doctor's advice.
const ONLY_AS_TEXT: &[&str] =
    &["/run/current-system/sw/share/nix-ld/lib/ld.so", "/nonexistent/bin/bash", "#!/usr/bin/env bash"];

/// The string literals of `source` with the function each is in: (function, literal, line).
fn literals(source: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let mut function = String::new();
    for (number, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        if let Some(rest) = code.trim_start().strip_prefix("fn ").or_else(|| code.trim_start().strip_prefix("pub fn "))
        {
            function = rest.split(['(', '<']).next().unwrap_or("").to_string();
        }
        let mut parts = code.split('"');
        parts.next();
        while let (Some(literal), _) = (parts.next(), parts.next()) {
            out.push((function.clone(), literal.to_string(), number + 1));
        }
    }
    out
}

/// Every literal naming a host-only path outside `root_*` and `host_*` functions, as
/// "file:line: literal".
fn host_paths(file: &str, source: &str) -> Vec<String> {
    literals(source)
        .into_iter()
        .filter(|(function, literal, _)| {
            !function.starts_with("root_")
                && !function.starts_with("host_")
                && HOST_ONLY.iter().any(|p| literal.contains(p))
                && !ONLY_AS_TEXT.iter().any(|p| literal.contains(p))
        })
        .map(|(_, literal, line)| format!("{file}:{line}: \"{literal}\""))
        .collect()
}

#[test]
fn what_the_nix_build_runs_names_no_host_only_path() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    let mut files = 0;
    for dir in ["src", "fixtures"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            // platforms.rs: the Nix build leaves all of its tests out (`--skip platforms::`): they
            // need cross compilers and qemu-user, and name their loaders' host paths.
            if path.file_name().is_some_and(|n| n == "sandbox.rs" || n == "platforms.rs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            found.extend(host_paths(&format!("{dir}/{}", path.file_name().unwrap().to_string_lossy()), &source));
            files += 1;
        }
    }
    assert!(files > 10, "read only {files} files");
    assert!(found.is_empty(), "the Nix build's tests name paths its sandbox does not have (name the test root_* or host_* if it needs them):\n{}", found.join("\n"));
}

#[test]
fn the_check_finds_a_host_path_and_exempts_root_tests() {
    let source = "fn a_test() {\n    run(\"/bin/bash\");\n}\nfn root_needs_the_host() {\n    run(\"/usr/bin/git\");\n}\n// \"/lib64\" in a comment\nfn b() { let s = \"/lib64/ld-linux-x86-64.so.2\"; }\n";
    assert_eq!(host_paths("x.rs", source), ["x.rs:2: \"/bin/bash\"", "x.rs:8: \"/lib64/ld-linux-x86-64.so.2\""]);
}
