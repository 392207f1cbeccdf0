//! nixpkgs attribute names that cannot be read from a store path's name, and the likely
//! attribute of a library found in no local store path.
//!
//! Checked against nixpkgs' own files at revision 009beb578c816ce84dbaef8aab17800ec66e9f8c
//! (`pkgs/servers/x11/xorg/default.nix`: `libX11 = libx11;`, `xcbutil = libxcb-util;`, ...): the
//! X.org libraries moved to top-level lowercase names (`libx11`, store name `libx11-1.8.12`) and
//! the `xorg` set keeps the old names as aliases; in 25.11 and before only `xorg.libX11` exists.
//! So the `xorg.` form is the one that evaluates on both sides of the change, and a store name of
//! either spelling maps to it. libglvnd's GL and EGL are `libGL` (an alias of libglvnd on Linux
//! in every release), GCC's runtime is `stdenv.cc.cc.lib`. Outputs (`-lib`, `-bin`, `-out`) are
//! not part of the attribute: both modules take each package's library output (`lib.getLib`).

/// The X.org libraries, as the `xorg` set spells them.
const XORG: &[&str] = &[
    "libX11",
    "libXau",
    "libXaw",
    "libXcomposite",
    "libXcursor",
    "libXdamage",
    "libXdmcp",
    "libXext",
    "libXfixes",
    "libXft",
    "libXi",
    "libXinerama",
    "libXmu",
    "libXpm",
    "libXpresent",
    "libXrandr",
    "libXrender",
    "libXres",
    "libXScrnSaver",
    "libXt",
    "libXtst",
    "libXv",
    "libXvMC",
    "libXxf86vm",
    "libxkbfile",
    "libxshmfence",
    "libxcb",
    "libSM",
    "libICE",
    "libfontenc",
    "libXfont2",
];

/// The xcb-util family: store names (old and new spelling) and the `xorg` attribute.
const XCB_UTIL: &[(&str, &str, &str)] = &[
    ("xcb-util", "libxcb-util", "xorg.xcbutil"),
    ("xcb-util-cursor", "libxcb-cursor", "xorg.xcbutilcursor"),
    ("xcb-util-image", "libxcb-image", "xorg.xcbutilimage"),
    ("xcb-util-keysyms", "libxcb-keysyms", "xorg.xcbutilkeysyms"),
    ("xcb-util-renderutil", "libxcb-render-util", "xorg.xcbutilrenderutil"),
    ("xcb-util-wm", "libxcb-wm", "xorg.xcbutilwm"),
    ("xcb-util-errors", "libxcb-errors", "xorg.xcbutilerrors"),
];

/// Package names (a store name without hash, version and output) whose attribute differs.
const RENAMED: &[(&str, &str)] =
    &[("libglvnd", "libGL"), ("gtk+3", "gtk3"), ("gtk+", "gtk2"), ("mesa-libgbm", "libgbm")];

/// The attribute of a package name read from a store path (`libX11`, `xcb-util-cursor`,
/// `gcc` with its `lib` output), when the table knows it.
pub fn for_package(name: &str, output: Option<&str>) -> Option<String> {
    if name == "gcc" && output == Some("lib") {
        return Some("stdenv.cc.cc.lib".into());
    }
    let bare = name.strip_prefix("xorg-").unwrap_or(name);
    if let Some(x) = XORG.iter().find(|x| x.eq_ignore_ascii_case(bare)) {
        return Some(format!("xorg.{x}"));
    }
    if let Some((_, _, attr)) = XCB_UTIL.iter().find(|(old, new, _)| *old == bare || *new == bare) {
        return Some(attr.to_string());
    }
    RENAMED.iter().find(|(n, _)| *n == name).map(|(_, a)| a.to_string())
}

/// Sonames and the attribute that provides them, for a library no local store path holds.
const BY_SONAME: &[(&str, &str)] = &[
    ("libX11-xcb.so.1", "xorg.libX11"),
    ("libxcb-cursor.so.0", "xorg.xcbutilcursor"),
    ("libxcb-icccm.so.4", "xorg.xcbutilwm"),
    ("libxcb-ewmh.so.2", "xorg.xcbutilwm"),
    ("libxcb-image.so.0", "xorg.xcbutilimage"),
    ("libxcb-keysyms.so.1", "xorg.xcbutilkeysyms"),
    ("libxcb-render-util.so.0", "xorg.xcbutilrenderutil"),
    ("libxcb-util.so.1", "xorg.xcbutil"),
    ("libXss.so.1", "xorg.libXScrnSaver"),
    ("libGL.so.1", "libGL"),
    ("libEGL.so.1", "libGL"),
    ("libGLX.so.0", "libGL"),
    ("libOpenGL.so.0", "libGL"),
    ("libGLdispatch.so.0", "libGL"),
    ("libstdc++.so.6", "stdenv.cc.cc.lib"),
    ("libgcc_s.so.1", "stdenv.cc.cc.lib"),
    ("libgomp.so.1", "stdenv.cc.cc.lib"),
    ("libcrypt.so.1", "libxcrypt"),
    ("libz.so.1", "zlib"),
    ("libffi.so.8", "libffi"),
    ("libglib-2.0.so.0", "glib"),
    ("libgobject-2.0.so.0", "glib"),
    ("libgio-2.0.so.0", "glib"),
    ("libgmodule-2.0.so.0", "glib"),
    ("libgthread-2.0.so.0", "glib"),
    ("libfontconfig.so.1", "fontconfig"),
    ("libfreetype.so.6", "freetype"),
    ("libdbus-1.so.3", "dbus"),
    ("libxkbcommon.so.0", "libxkbcommon"),
    ("libxkbcommon-x11.so.0", "libxkbcommon"),
    ("libssl.so.3", "openssl"),
    ("libcrypto.so.3", "openssl"),
    ("libnss3.so", "nss"),
    ("libnssutil3.so", "nss"),
    ("libsmime3.so", "nss"),
    ("libnspr4.so", "nspr"),
    ("libplc4.so", "nspr"),
    ("libplds4.so", "nspr"),
    ("libasound.so.2", "alsa-lib"),
    ("libexpat.so.1", "expat"),
    ("libuuid.so.1", "libuuid"),
    ("libpng16.so.16", "libpng"),
    ("libdrm.so.2", "libdrm"),
    ("libwayland-client.so.0", "wayland"),
    ("libcups.so.2", "cups"),
    ("libgtk-3.so.0", "gtk3"),
    ("libpango-1.0.so.0", "pango"),
    ("libcairo.so.2", "cairo"),
    ("libgdk_pixbuf-2.0.so.0", "gdk-pixbuf"),
    ("libharfbuzz.so.0", "harfbuzz"),
    ("libsqlite3.so.0", "sqlite"),
    ("libbz2.so.1", "bzip2"),
    ("liblzma.so.5", "xz"),
    ("libzstd.so.1", "zstd"),
    ("libcurl.so.4", "curl"),
    ("libudev.so.1", "systemd"),
    ("libpulse.so.0", "libpulseaudio"),
    ("libncursesw.so.6", "ncurses"),
    ("libtinfo.so.6", "ncurses"),
    ("libkrb5.so.3", "krb5"),
    ("libgssapi_krb5.so.2", "krb5"),
    ("libxml2.so.2", "libxml2"),
    ("libicuuc.so.74", "icu74"),
];

/// The likely attribute of a library found in no local store path.
pub fn for_soname(soname: &str) -> Option<String> {
    if let Some((_, a)) = BY_SONAME.iter().find(|(s, _)| *s == soname) {
        return Some(a.to_string());
    }
    // libX11.so.6 → xorg.libX11, libxcb-randr.so.0 → xorg.libxcb (every libxcb-* not in xcb-util).
    let stem = soname.split(".so").next()?;
    if stem.starts_with("libxcb") {
        return Some("xorg.libxcb".into());
    }
    XORG.iter().find(|x| x.eq_ignore_ascii_case(stem)).map(|x| format!("xorg.{x}"))
}

/// Whether a library comes with the graphics or compute driver rather than from a package:
/// libglvnd's vendor libraries (`libGLX_nvidia`, `libEGL_mesa`), CUDA, NVIDIA's own.
pub fn is_driver(soname: &str) -> bool {
    ["libGLX_", "libEGL_", "libnvidia-", "libcuda.so", "libnvcuvid.so", "libvdpau_"]
        .iter()
        .any(|p| soname.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorg_names_of_both_spellings_give_the_form_that_evaluates_before_and_after() {
        assert_eq!(for_package("libX11", None).as_deref(), Some("xorg.libX11"));
        assert_eq!(for_package("libx11", None).as_deref(), Some("xorg.libX11"));
        assert_eq!(for_package("libXcomposite", None).as_deref(), Some("xorg.libXcomposite"));
        assert_eq!(for_package("xorg-libXtst", None).as_deref(), Some("xorg.libXtst"));
        assert_eq!(for_package("libxkbfile", None).as_deref(), Some("xorg.libxkbfile"));
        assert_eq!(for_package("xcb-util-cursor", None).as_deref(), Some("xorg.xcbutilcursor"));
        assert_eq!(for_package("libxcb-render-util", None).as_deref(), Some("xorg.xcbutilrenderutil"));
        assert_eq!(for_package("libglvnd", None).as_deref(), Some("libGL"));
        assert_eq!(for_package("gcc", Some("lib")).as_deref(), Some("stdenv.cc.cc.lib"));
        assert_eq!(for_package("zlib", None), None, "read from the store name, not the table");
    }

    #[test]
    fn sonames_give_a_likely_attribute() {
        assert_eq!(for_soname("libX11.so.6").as_deref(), Some("xorg.libX11"));
        assert_eq!(for_soname("libXrandr.so.2").as_deref(), Some("xorg.libXrandr"));
        assert_eq!(for_soname("libxcb-randr.so.0").as_deref(), Some("xorg.libxcb"));
        assert_eq!(for_soname("libxcb-cursor.so.0").as_deref(), Some("xorg.xcbutilcursor"));
        assert_eq!(for_soname("libEGL.so.1").as_deref(), Some("libGL"));
        assert_eq!(for_soname("libcrypt.so.1").as_deref(), Some("libxcrypt"));
        assert_eq!(for_soname("libnothing.so.1"), None);
    }

    #[test]
    fn drivers_are_told_apart_from_packages() {
        for d in ["libGLX_nvidia.so.0", "libEGL_mesa.so.0", "libcuda.so.1", "libnvidia-ml.so.1"] {
            assert!(is_driver(d), "{d}");
        }
        for p in ["libGL.so.1", "libEGL.so.1", "libGLX.so.0", "libX11.so.6"] {
            assert!(!is_driver(p), "{p}");
        }
    }
}
