//! execve integration tests: small C programs whose interpreter is the built shim, run for real.
//!
//! `cargo xtask test` builds the shims and passes their paths in `NIX_LD_TEST_SHIM` (the release
//! shim with the NixOS defaults) and `NIX_LD_TEST_DEFAULTS_SHIM` (a shim whose compiled-in defaults
//! point into `NIX_LD_TEST_DEFAULTS_DIR`). Every test first shows the failure it guards against.

#[cfg(test)]
mod constructors;
#[cfg(test)]
mod debuggers;
#[cfg(test)]
mod direct;
#[cfg(test)]
mod doctor;
#[cfg(test)]
mod doctor32;
#[cfg(test)]
mod doctor_apps;
#[cfg(test)]
mod environment;
#[cfg(test)]
mod errors;
#[cfg(test)]
mod loading;
#[cfg(test)]
mod platforms;
#[cfg(test)]
mod privilege;
#[cfg(test)]
mod sandbox;
#[cfg(test)]
mod system;

pub mod nixos_root;
pub mod support;
