//! Release binaries keep their line tables, so a panic's backtrace names file and line, but
//! compressed: the linker writes the `.debug_*` sections zlib-compressed (ELF `SHF_COMPRESSED`),
//! which the standard library's backtrace reader, gdb, addr2line and perf all read. They are
//! not loaded into memory when the program runs. Without this the release `medsec` was 251 MB,
//! nearly all of it line tables. Cargo has no profile setting for it, hence this script; the
//! agent's package uses the same file.

fn main() {
    // Only the profile and the target decide; nothing in the sources does.
    println!("cargo::rerun-if-env-changed=PROFILE");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    if release && linux {
        println!("cargo::rustc-link-arg-bins=-Wl,--compress-debug-sections=zlib");
    }
}
