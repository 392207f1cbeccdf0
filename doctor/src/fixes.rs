//! The lines to paste for every missing library at once: a one-off setting of the variable the
//! shim reads here, keeping what it holds now; a line for each module; a line for a project's
//! mkShell that adds to the system's library path; and, for driver libraries, the NixOS options
//! that provide them. A 32-bit program's lines name the 32-bit shim's variable and options and
//! nixpkgs' 32-bit package set (`pkgsi686Linux`).

use crate::loader::Choice;
use crate::report::{Fixes, Report};

use nix_ld::target;

/// Where NixOS puts the graphics and compute driver's libraries (hardware.graphics).
pub const DRIVER_DIR: &str = "/run/opengl-driver/lib";
/// Where it puts their 32-bit builds (hardware.graphics.enable32Bit).
pub const DRIVER_DIR32: &str = "/run/opengl-driver-32/lib";

/// The variable the shim reads for its library path here: the system-specific one when it is
/// set, since it wins over the generic one. For the 32-bit shim always its own: the plain name
/// is the 64-bit shim's too, and 32-bit directories there would break the program's 64-bit
/// children.
pub fn variable(choice: &Choice) -> String {
    match choice.library_path_source {
        _ if choice.platform == target::I686 => String::from_utf8_lossy(target::I686.library_path_system).into(),
        nix_ld::plan::Source::SystemSpecific => String::from_utf8_lossy(choice.platform.library_path_system).into(),
        _ => "NIX_LD_LIBRARY_PATH".into(),
    }
}

/// `text` as one shell word.
pub fn quote(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./:+=@%,-".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// The value for the one-off: what the path holds now (the compiled-in default written out
/// when the variable is unset), then the directories to add.
pub fn extended(current: &str, added: &[String]) -> String {
    let mut parts: Vec<&str> = current.split(':').filter(|d| !d.is_empty()).collect();
    for dir in added {
        if !parts.contains(&dir.as_str()) {
            parts.push(dir);
        }
    }
    parts.join(":")
}

/// The fixes for `report`'s missing libraries, with `added` the store directories chosen;
/// `start` is the shell words that start the program (None for a library or a directory: the
/// one-off is an `export` line then).
pub fn write(report: &Report, choice: &Choice, added: &[String], start: Option<String>) -> Fixes {
    let variable = variable(choice);
    let thirty_two = choice.platform == target::I686;
    let (driver_dir, packages, suffix) =
        if thirty_two { (DRIVER_DIR32, "pkgs.pkgsi686Linux", "32") } else { (DRIVER_DIR, "pkgs", "") };
    let drivers = report.missing.iter().any(|m| m.driver);
    let mut dirs = added.to_vec();
    if drivers && std::path::Path::new(driver_dir).is_dir() {
        dirs.push(driver_dir.into());
    }
    let one_off = (!dirs.is_empty()).then(|| {
        let value = quote(&extended(&choice.library_path, &dirs));
        match &start {
            Some(start) => format!("{variable}={value} {start}"),
            None => format!("export {variable}={value}"),
        }
    });
    let mut attributes: Vec<String> = Vec::new();
    for m in report.missing.iter().filter(|m| !m.driver) {
        let first = m.candidates.first();
        // What the local nixpkgs says is no attribute would not evaluate: left out.
        if first.is_some_and(|c| c.attribute_from == Some("not-in-nixpkgs")) {
            continue;
        }
        let attribute = first.and_then(|c| c.attribute.clone()).or_else(|| m.likely_attribute.clone());
        if let Some(a) = attribute {
            if !attributes.contains(&a) {
                attributes.push(a);
            }
        }
    }
    attributes.sort();
    let list = attributes.join(" ");
    let (nixpkgs_module, shim_module, mk_shell) = if attributes.is_empty() {
        (None, None, None)
    } else {
        let default = if thirty_two {
            target::I686.nixos_library_path.to_string()
        } else {
            String::from_utf8_lossy(nix_ld::defaults::LIBRARY_PATH).into_owned()
        };
        (
            // nixpkgs' module has no 32-bit library set.
            (!thirty_two).then(|| format!("programs.nix-ld.libraries = with pkgs; [ {list} ];")),
            Some(format!("programs.nix-ld-shim.libraries{suffix} = with {packages}; [ {list} ];")),
            Some(format!(
                "shellHook = ''export {variable}=${{pkgs.lib.makeLibraryPath (with {packages}; [ {list} ])}}:''${{{variable}:-{default}}}'';"
            )),
        )
    };
    let drivers = if drivers {
        vec![
            if thirty_two { "hardware.graphics.enable32Bit = true;" } else { "hardware.graphics.enable = true;" }
                .to_string(),
            format!("programs.nix-ld-shim.libraryDirectories{suffix} = [ \"{driver_dir}\" ];"),
        ]
    } else {
        Vec::new()
    };
    Fixes { variable, one_off, nixpkgs_module, shim_module, mk_shell, drivers }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(quote("/nix/store/a-b/lib:/c"), "/nix/store/a-b/lib:/c");
        assert_eq!(quote("/my app/x"), "'/my app/x'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
    }

    fn choice(source: nix_ld::plan::Source, library_path: &str) -> Choice {
        Choice {
            loader: "/l/ld.so".into(),
            loader_from: "NIX_LD".into(),
            loader_source: nix_ld::plan::Source::Generic,
            library_path_source: source,
            library_path: library_path.into(),
            library_path_from: String::new(),
            directories: vec![],
            left_out: vec![],
            user_path: None,
            handed: vec![],
            passed_over: None,
            platform: nix_ld::target::X86_64,
        }
    }

    fn missing(library: &str, attribute: Option<&str>, driver: bool) -> crate::report::Missing {
        crate::report::Missing {
            library: library.into(),
            needed_by: vec!["/opt/app/bin/app".into()],
            candidates: attribute
                .map(|a| crate::report::Candidate {
                    directory: format!("/nix/store/h-{a}-1/lib"),
                    attribute: Some(a.into()),
                    attribute_from: Some("store-name"),
                    confirmed: false,
                    needs_glibc: None,
                })
                .into_iter()
                .collect(),
            likely_attribute: None,
            likely_from: None,
            driver,
            found_later: false,
            unshipped: false,
        }
    }

    #[test]
    fn drivers_get_the_nixos_options_not_a_package_and_each_attribute_comes_once() {
        let report = Report {
            target: "/opt/app/bin/app".into(),
            missing: vec![
                missing("libGLX_nvidia.so.0", None, true),
                missing("libX11.so.6", Some("xorg.libX11"), false),
                missing("libX11-xcb.so.1", Some("xorg.libX11"), false),
            ],
            ..Report::default()
        };
        let system = choice(nix_ld::plan::Source::SystemSpecific, "/set");
        let f = write(&report, &system, &["/nix/store/h-xorg.libX11-1/lib".into()], Some("/opt/app/bin/app".into()));
        assert_eq!(f.variable, "NIX_LD_LIBRARY_PATH_x86_64_linux");
        assert_eq!(f.nixpkgs_module.as_deref(), Some("programs.nix-ld.libraries = with pkgs; [ xorg.libX11 ];"));
        assert_eq!(f.drivers[0], "hardware.graphics.enable = true;");
        assert!(f.drivers[1].contains("\"/run/opengl-driver/lib\""), "{:?}", f.drivers);
        let one_off = f.one_off.unwrap();
        assert!(
            one_off.starts_with("NIX_LD_LIBRARY_PATH_x86_64_linux=/set:/nix/store/h-xorg.libX11-1/lib"),
            "{one_off}"
        );
        assert!(one_off.ends_with(" /opt/app/bin/app"), "{one_off}");
        // For a directory or a library: an export line, on the generic variable when that is read.
        let generic = choice(nix_ld::plan::Source::Generic, "");
        let f = write(&report, &generic, &["/d".into()], None);
        assert!(f.one_off.unwrap().starts_with("export NIX_LD_LIBRARY_PATH=/d"));
    }

    #[test]
    fn a_32_bit_programs_lines_name_the_32_bit_shims_variable_options_and_packages() {
        let report = Report {
            target: "/opt/game/game".into(),
            missing: vec![missing("libGL.so.1", None, true), missing("libX11.so.6", Some("xorg.libX11"), false)],
            ..Report::default()
        };
        // Even when the plain variable is what it reads now: that one is the 64-bit shim's too.
        let thirty_two = Choice { platform: nix_ld::target::I686, ..choice(nix_ld::plan::Source::Generic, "/p") };
        let f = write(&report, &thirty_two, &["/nix/store/h-xorg.libX11-1/lib".into()], Some("/opt/game/game".into()));
        assert_eq!(f.variable, "NIX_LD_LIBRARY_PATH_i686_linux");
        assert!(f.one_off.unwrap().starts_with("NIX_LD_LIBRARY_PATH_i686_linux=/p:/nix/store/h-xorg.libX11-1/lib"));
        assert_eq!(f.nixpkgs_module, None);
        assert_eq!(
            f.shim_module.as_deref(),
            Some("programs.nix-ld-shim.libraries32 = with pkgs.pkgsi686Linux; [ xorg.libX11 ];")
        );
        let shell = f.mk_shell.unwrap();
        assert!(shell.contains("(with pkgs.pkgsi686Linux; [ xorg.libX11 ])"), "{shell}");
        assert!(
            shell.contains("${NIX_LD_LIBRARY_PATH_i686_linux:-/run/current-system/sw/share/nix-ld32/lib}"),
            "{shell}"
        );
        assert_eq!(f.drivers[0], "hardware.graphics.enable32Bit = true;");
        assert_eq!(f.drivers[1], "programs.nix-ld-shim.libraryDirectories32 = [ \"/run/opengl-driver-32/lib\" ];");
    }

    #[test]
    fn the_path_keeps_what_it_holds_and_adds_each_directory_once() {
        assert_eq!(extended("/a:/b", &["/c".into(), "/a".into()]), "/a:/b:/c");
        assert_eq!(extended("", &["/c".into()]), "/c");
        // An empty element would be the current directory: never written.
        assert_eq!(extended("/a::", &["/c".into()]), "/a:/c");
    }
}
