//! A release build with line tables (`cargo build --profile release-lines`) keeps them, so a
//! panic's backtrace names file and line, but compressed: the linker writes the `.debug_*`
//! sections zlib-compressed (ELF `SHF_COMPRESSED`), which the standard library's backtrace
//! reader, gdb, addr2line and perf all read, and which are not loaded into memory when the
//! program runs. That cuts `medsec` from 251 MB to 95 MB. The plain release profile
//! has no debug info, so there is nothing to compress. Cargo has no profile setting for it, hence
//! this script; the agent's package uses the same file.

fn main() {
    // Only the profile and the target decide, and each profile runs this script on its own;
    // naming one variable keeps cargo from rerunning it after every source change.
    println!("cargo::rerun-if-env-changed=PROFILE");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let debug = std::env::var("DEBUG").is_ok_and(|d| d != "false" && d != "0");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    if release && debug && linux {
        println!("cargo::rustc-link-arg-bins=-Wl,--compress-debug-sections=zlib");
    }
}
