//! Fault injection for the crash tests: `MEDSEC_AGENT_KILL_AT=NAME` (or `NAME#N`, the N-th time
//! this process reaches NAME; `any#N`, the N-th point of any name) makes the agent say where on
//! standard error and kill itself with SIGKILL there — a real
//! kill, as power loss would stop it: no destructors, no flushing. Harmless in production: whoever
//! can set the agent's environment can kill it anyway.

use std::sync::atomic::{AtomicU32, Ordering};

static HITS: AtomicU32 = AtomicU32::new(0);

/// A named point in the install cycle.
pub fn point(name: &str) {
    let Ok(spec) = std::env::var("MEDSEC_AGENT_KILL_AT") else {
        return;
    };
    let (want, nth) = match spec.split_once('#') {
        Some((w, n)) => (w.to_owned(), n.parse().unwrap_or(1)),
        None => (spec, 1),
    };
    if want != name && want != "any" {
        return;
    }
    if HITS.fetch_add(1, Ordering::SeqCst) + 1 != nth {
        return;
    }
    eprintln!("fault: killed at {name}");
    // `unsafe` is forbidden here, so no libc::kill: the shell's kill builtin sends the signal.
    let _ = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("kill -KILL {}", std::process::id()))
        .status();
    // The signal is asynchronous; never continue past the point.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
