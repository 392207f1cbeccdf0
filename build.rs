//! Link the shim as a freestanding position-independent executable (see linker.ld) and bake in the
//! compiled-in defaults.
fn main() {
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static-pie",
        "-Wl,--no-dynamic-linker",
        "-Wl,-z,text",
        "-Wl,-z,noexecstack",
        "-Wl,--gc-sections",
        "-Wl,--build-id=none",
        "-Wl,-z,norelro",
        "-Wl,-e,_start",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    // AArch64 kernels run 4, 16 or 64 KiB pages: one file must load under each (the shim's one
    // segment starts at offset 0, so only the alignment it declares changes).
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("aarch64") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,max-page-size=65536");
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{}/linker.ld", std::env::var("CARGO_MANIFEST_DIR").unwrap());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=linker.ld");
    // The compiled-in defaults (read with option_env! in src/lib.rs).
    println!("cargo:rerun-if-env-changed=DEFAULT_NIX_LD");
    println!("cargo:rerun-if-env-changed=DEFAULT_NIX_LD_LIBRARY_PATH");
}
