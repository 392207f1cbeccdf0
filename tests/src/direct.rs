//! The shim run as a command behaves like the real loader run the same way.

use std::process::Command;

use crate::support::*;

/// Replaces load addresses like "(0x00007f...)" so two runs can be compared.
fn without_addresses(s: &str) -> String {
    s.lines().map(|l| l.split(" (0x").next().unwrap_or(l).to_string()).collect::<Vec<_>>().join("\n")
}

#[test]
fn version_matches_the_real_loader() {
    let loader = system_loader();
    let want = Command::new(&loader).arg("--version").output().unwrap();
    let got = Command::new(shim()).arg("--version").env("NIX_LD", &loader).output().unwrap();
    assert!(want.status.success() && !want.stdout.is_empty());
    assert_eq!(got.status.code(), want.status.code());
    assert_eq!(stdout(&got), stdout(&want));
}

#[test]
fn verify_matches_the_real_loader() {
    let dir = scratch("direct-verify");
    let prog = compile(&dir, "hello.c", "hello", &system_loader(), &[]);
    let stat = static_program(&dir, "static", false);
    std::fs::write(dir.join("text"), "not a program\n").unwrap();
    let loader = system_loader();
    for file in [prog, stat, dir.join("text")] {
        let want = Command::new(&loader).arg("--verify").arg(&file).output().unwrap();
        let got = Command::new(shim()).arg("--verify").arg(&file).env("NIX_LD", &loader).output().unwrap();
        assert_eq!(got.status.code(), want.status.code(), "{}", file.display());
    }
}

#[test]
fn list_shows_libraries_from_the_nix_directories() {
    let dir = scratch("direct-list");
    let lib = greet_library(&dir);
    let prog = needs_greet(&dir, &lib, &system_loader());
    let loader = system_loader();
    // The real loader alone cannot find libgreet...
    let alone = Command::new(&loader).arg("--list").arg(&prog).output().unwrap();
    assert_eq!(alone.status.code(), Some(127));
    assert!(stderr(&alone).contains("libgreet.so: cannot open shared object file"), "{}", stderr(&alone));
    // ...the shim applies NIX_LD_LIBRARY_PATH, exactly as --library-path would.
    let want = Command::new(&loader).arg("--library-path").arg(&lib).arg("--list").arg(&prog).output().unwrap();
    let got = Command::new(shim())
        .arg("--list")
        .arg(&prog)
        .env("NIX_LD", &loader)
        .env("NIX_LD_LIBRARY_PATH", &lib)
        .output()
        .unwrap();
    assert_eq!(got.status.code(), want.status.code());
    // ld.so names itself by the path it was started as: the shim's path, here.
    let got_text = stdout(&got).replace(&format!(" => {}", shim().display()), "");
    assert_eq!(without_addresses(&got_text), without_addresses(&stdout(&want)));
    assert!(stdout(&got).contains(&format!("libgreet.so => {}/libgreet.so", lib.display())));
}

#[test]
fn running_a_program_through_the_shim_command_applies_the_library_path() {
    let dir = scratch("direct-run");
    let lib = greet_library(&dir);
    let prog = needs_greet(&dir, &lib, &system_loader());
    let loader = system_loader();
    let without = Command::new(shim()).arg(&prog).env_clear().env("NIX_LD", &loader).output().unwrap();
    assert_eq!(without.status.code(), Some(127));
    let with = Command::new(shim())
        .arg(&prog)
        .env_clear()
        .env("NIX_LD", &loader)
        .env("NIX_LD_LIBRARY_PATH", &lib)
        .output()
        .unwrap();
    assert!(with.status.success(), "{}", stderr(&with));
    assert_eq!(stdout(&with), "greetings from libgreet\n");
    // The program's own environment is untouched: no LD_LIBRARY_PATH appears in it.
    let printenv = compile(&dir, "printenv.c", "printenv", &system_loader(), &["-Wl,-e,fixture_entry"]);
    let out = Command::new(shim())
        .arg(&printenv)
        .env_clear()
        .env("NIX_LD", &loader)
        .env("NIX_LD_LIBRARY_PATH", &lib)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = entries(&out.stdout);
    assert_eq!(
        seen,
        vec![
            format!("NIX_LD={}", loader.display()).into_bytes(),
            format!("NIX_LD_LIBRARY_PATH={}", lib.display()).into_bytes()
        ]
    );
}

#[test]
fn without_arguments_it_behaves_like_ld_so_and_info_logging_says_what_it_would_use() {
    let loader = system_loader();
    let want = Command::new(&loader).env_clear().output().unwrap();
    assert!(!want.status.success(), "ld.so without a program fails");
    let got = Command::new(shim()).env_clear().env("NIX_LD", &loader).output().unwrap();
    assert_eq!(got.status.code(), want.status.code(), "{}", stderr(&got));
    let named =
        |out: &std::process::Output, name: &std::path::Path| stderr(out).replace(name.to_str().unwrap(), "LOADER");
    assert_eq!(named(&got, &shim()), named(&want, &loader));
    // What it would use: NIX_LD_LOG=info, the same lines as for any program.
    let out = Command::new(shim())
        .env_clear()
        .env("NIX_LD", &loader)
        .env("NIX_LD_LIBRARY_PATH", "/a:/b")
        .env("NIX_LD_LOG", "info")
        .output()
        .unwrap();
    let text = stderr(&out);
    assert!(text.contains(&format!("nix-ld: loader {} (from NIX_LD)\n", loader.display())), "{text}");
    assert!(text.contains("nix-ld: library path /a:/b (from NIX_LD_LIBRARY_PATH)\n"), "{text}");
}
