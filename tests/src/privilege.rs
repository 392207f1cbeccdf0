//! Setuid, setgid and file-capability programs: the environment cannot choose their loader.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::support::*;

fn setuid_root(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o4755)).unwrap();
}

/// Runs `program` as user nobody (65534) with `env`.
fn as_nobody(program: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(program).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn root_a_setuid_program_ignores_nix_ld() {
    require_root();
    let dir = scratch("setuid");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let fake = freestanding(&dir, "fake_loader.c", "fake-ld.so");

    // The danger: a loader the caller chooses runs with the program's privileges.
    let exposed = compile(&dir, "euid.c", "exposed", &fake, &[]);
    setuid_root(&exposed);
    let out = as_nobody(&exposed, &[]);
    assert_eq!(stdout(&out), "FAKE LOADER euid=0\n", "a loader of a setuid program runs as root: {}", stderr(&out));

    // Through the shim, NIX_LD naming that loader is ignored. With the compiled-in default
    // missing (as on this machine), the program is refused, with the reason.
    let prog = compile(&dir, "euid.c", "prog", &shim(), &[]);
    setuid_root(&prog);
    let out = as_nobody(&prog, &[("NIX_LD", fake.to_str().unwrap()), ("NIX_LD_x86_64_linux", fake.to_str().unwrap())]);
    assert!(!stdout(&out).contains("FAKE"), "the fake loader ran: {}", stdout(&out));
    assert_eq!(out.status.code(), Some(127));
    assert!(
        stderr(&out).contains("loader /run/current-system/sw/share/nix-ld/lib/ld.so does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("setuid"), "{}", stderr(&out));
    // Run by root itself, the same program honours NIX_LD: the variable works, it is just not
    // trusted across a privilege boundary.
    let out = run_with(&prog, &[], &[("NIX_LD", fake.to_str().unwrap())]);
    assert_eq!(stdout(&out), "FAKE LOADER euid=0\n");
}

#[test]
fn root_a_setuid_program_runs_with_the_compiled_in_loader() {
    require_root();
    let _guard = defaults_lock();
    let defaults = defaults_dir();
    let _ = std::fs::remove_dir_all(&defaults);
    std::fs::create_dir_all(&defaults).unwrap();
    std::os::unix::fs::symlink(system_loader(), defaults.join("ld.so")).unwrap();
    let dir = scratch("setuid-defaults");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let prog = compile(&dir, "euid.c", "prog", &defaults_shim(), &[]);
    setuid_root(&prog);
    let out = as_nobody(&prog, &[("NIX_LD", "/nonexistent"), ("NIX_LD_LOG", "trace")]);
    assert_eq!(stdout(&out), "REAL PROGRAM euid=0\n", "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "NIX_LD_LOG is not honoured for a privileged program either");
}
