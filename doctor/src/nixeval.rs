//! Confirming attributes against a nixpkgs that is already on this machine: `<nixpkgs>` from
//! `NIX_PATH` or a channel, or a registry entry that is a store path; never a download
//! (`nix eval --offline`), and with a time limit. An attribute is confirmed when its library
//! output evaluates to the store path where the library was found.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the evaluation may take (`NIX_LD_DOCTOR_EVAL_TIMEOUT_MS` changes it, for tests).
const TIME_LIMIT: Duration = Duration::from_secs(10);

/// The `nixpkgs=PATH` entry of a `NIX_PATH` value, or a bare entry holding a `nixpkgs`, when that
/// path is on this machine (a URL is not: it would be a download).
pub fn from_nix_path(nix_path: &str) -> Option<PathBuf> {
    for entry in nix_path.split(':').filter(|e| !e.is_empty()) {
        let candidate = match entry.split_once('=') {
            Some(("nixpkgs", path)) => PathBuf::from(path),
            Some(_) => continue,
            None => Path::new(entry).join("nixpkgs"),
        };
        if candidate.is_absolute() && candidate.exists() {
            return Some(candidate);
        }
    }
    None
}

/// The `nixpkgs` entry of a flake registry (`/etc/nix/registry.json`) when it is a store path.
pub fn from_registry(json: &str) -> Option<PathBuf> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    value["flakes"].as_array()?.iter().find_map(|flake| {
        let (from, to) = (&flake["from"], &flake["to"]);
        let path = to["path"].as_str()?;
        (from["id"] == "nixpkgs" && to["type"] == "path" && path.starts_with("/nix/store/") && Path::new(path).exists())
            .then(|| PathBuf::from(path))
    })
}

/// The local nixpkgs, if there is one.
pub fn local_nixpkgs() -> Option<PathBuf> {
    if let Some(p) = std::env::var("NIX_PATH").ok().as_deref().and_then(from_nix_path) {
        return Some(p);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let channels = [
        format!("{home}/.nix-defexpr/channels/nixpkgs"),
        "/nix/var/nix/profiles/per-user/root/channels/nixpkgs".into(),
    ];
    if let Some(p) = channels.iter().map(PathBuf::from).find(|p| p.exists()) {
        return Some(p);
    }
    std::fs::read_to_string("/etc/nix/registry.json").ok().as_deref().and_then(from_registry)
}

/// The Nix expression giving, for each attribute, the store path of its library output, or null.
pub fn expression(nixpkgs: &Path, attributes: &[String]) -> String {
    let list: Vec<String> = attributes.iter().map(|a| serde_json::to_string(a).unwrap_or_default()).collect();
    format!(
        "let pkgs = import {} {{ }}; lib = pkgs.lib; out = a: let v = lib.attrByPath (lib.splitString \".\" a) null pkgs; r = builtins.tryEval (lib.getLib v).outPath; in if lib.isDerivation v && r.success then r.value else null; in map out [ {} ]",
        serde_json::to_string(&nixpkgs.display().to_string()).unwrap_or_default(),
        list.join(" ")
    )
}

/// The store paths the local nixpkgs gives `attributes` (None for each it does not have), or Err
/// saying why there is no answer (no nix, no local nixpkgs, too slow, an error).
pub fn evaluate(attributes: &[String]) -> Result<Vec<Option<String>>, String> {
    let nixpkgs = local_nixpkgs().ok_or("no local nixpkgs (NIX_PATH, a channel, or a registry store path)")?;
    let mut child = Command::new("nix")
        .args(["--extra-experimental-features", "nix-command", "eval", "--offline", "--json", "--impure", "--expr"])
        .arg(expression(&nixpkgs, attributes))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run nix: {e}"))?;
    let limit = std::env::var("NIX_LD_DOCTOR_EVAL_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(TIME_LIMIT, Duration::from_millis);
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("nix eval took longer than {} s", limit.as_secs_f64()));
            }
            Err(e) => return Err(format!("nix eval: {e}")),
        }
    };
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut text);
    }
    if !status.success() {
        return Err(format!("nix eval failed ({status})"));
    }
    let values: Vec<Option<String>> =
        serde_json::from_str(&text).map_err(|e| format!("nix eval said {text:?}: {e}"))?;
    if values.len() != attributes.len() {
        return Err(format!("nix eval gave {} answers for {} attributes", values.len(), attributes.len()));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nixpkgs_is_taken_from_nix_path_only_when_it_is_local() {
        let here = std::env::temp_dir();
        let entry = format!("nixpkgs={}", here.display());
        assert_eq!(from_nix_path(&format!("other=/x:{entry}")), Some(here.clone()));
        assert_eq!(from_nix_path("nixpkgs=https://github.com/NixOS/nixpkgs/archive/master.tar.gz"), None);
        assert_eq!(from_nix_path("nixpkgs=/nonexistent/nixpkgs"), None);
        assert_eq!(from_nix_path(""), None);
    }

    #[test]
    fn a_registry_entry_counts_only_as_a_store_path() {
        let json = r#"{"flakes":[{"from":{"id":"nixpkgs","type":"indirect"},"to":{"owner":"NixOS","repo":"nixpkgs","type":"github"}}],"version":2}"#;
        assert_eq!(from_registry(json), None);
        assert_eq!(from_registry("not json"), None);
    }

    #[test]
    fn the_expression_asks_for_each_attributes_library_output() {
        let e = expression(Path::new("/n/nixpkgs"), &["xorg.libX11".into(), "zlib".into()]);
        assert!(e.starts_with("let pkgs = import \"/n/nixpkgs\" { };"), "{e}");
        assert!(e.ends_with("in map out [ \"xorg.libX11\" \"zlib\" ]"), "{e}");
        assert!(e.contains("lib.getLib v"), "{e}");
    }
}
