//! Telemetry from the device: security events the agent itself sees (boots, installs, rollbacks)
//! and network metrics read from the kernel, sent in numbered batches to the server, and kept
//! on disk while the server cannot be reached (store and forward).
//!
//! - Events wait in the telemetry record (two checksummed copies, like the agent's state).
//! - At each poll, waiting events and fresh metrics are sealed into a batch file in `outbox/`,
//!   named by its sequence number, and the record's next number moves on. A crash between the
//!   two leaves the events in the record and the same number free, so the next seal rewrites
//!   that file with a superset: nothing is lost and nothing is sent twice.
//! - Batches go oldest first; each file is removed once the server answered 200. A 409 names
//!   the server's last accepted number: equal to the batch's, the batch was stored and its
//!   answer lost; above it, this device's numbering restarted (its record was lost), and the
//!   batch goes again under the next number.
//! - At most `max_queued` batches wait; past that the oldest are dropped and counted, and
//!   `agent status` shows the count.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use medsec_util::now_ms;

use crate::record::Record;
use crate::{Access, Error};

/// Most events sealed into one batch (the server takes up to 10,000 by default).
pub const MAX_EVENTS_PER_BATCH: usize = 1_000;
/// Default bound of the outbox, in batches.
pub const DEFAULT_MAX_QUEUED: usize = 1_000;

/// Interface counters, summed over every interface but loopback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Bytes received.
    pub bytes_in: u64,
    /// Packets received.
    pub packets_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Packets sent.
    pub packets_out: u64,
}

/// What the telemetry record holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TelemetryState {
    /// The number the next sealed batch gets (from 1).
    pub next_sequence: i64,
    /// Events not sealed yet.
    pub pending: Vec<Value>,
    /// Counters at the last seal (metrics are the differences).
    pub counters: Option<Counters>,
    /// Batches dropped because the outbox was full.
    pub dropped: u64,
}

/// Parses `/proc/net/dev`: the sum of every interface's counters but `lo`.
pub fn parse_net_dev(text: &str) -> Option<Counters> {
    let mut total = Counters::default();
    let mut seen = false;
    for line in text.lines().skip(2) {
        let (name, rest) = line.split_once(':')?;
        if name.trim() == "lo" {
            continue;
        }
        let fields: Vec<u64> = rest
            .split_whitespace()
            .map(|f| f.parse::<u64>())
            .collect::<Result<_, _>>()
            .ok()?;
        // Receive: bytes packets errs drop fifo frame compressed multicast; then transmit.
        let get = |i: usize| fields.get(i).copied();
        total.bytes_in = total.bytes_in.saturating_add(get(0)?);
        total.packets_in = total.packets_in.saturating_add(get(1)?);
        total.bytes_out = total.bytes_out.saturating_add(get(8)?);
        total.packets_out = total.packets_out.saturating_add(get(9)?);
        seen = true;
    }
    seen.then_some(total)
}

/// Parses `/proc/net/tcp` or `tcp6`: the local ports in state LISTEN (`0A`), sorted, once each.
pub fn parse_listening(text: &str) -> Vec<u16> {
    let mut ports: Vec<u16> = text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let local = f.nth(1)?;
            let state = f.nth(1)?;
            if state != "0A" {
                return None;
            }
            u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Parses `/proc/net/route`: the interface of the default route (destination 0.0.0.0).
pub fn parse_default_interface(text: &str) -> Option<String> {
    text.lines().skip(1).find_map(|line| {
        let mut cols = line.split_whitespace();
        let iface = cols.next()?;
        (cols.next()? == "00000000").then(|| iface.to_owned())
    })
}

/// A MAC address as `/sys/class/net/<if>/address` holds it, if it is one and not all zeros
/// (tunnels and loopback have none worth binding).
fn usable_mac(text: &str) -> Option<String> {
    let mac = text.trim().to_ascii_lowercase();
    let octets: Vec<&str> = mac.split(':').collect();
    let ok = octets.len() == 6
        && octets
            .iter()
            .all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()))
        && octets.iter().any(|o| *o != "00");
    ok.then_some(mac)
}

/// The device's telemetry: its record and outbox.
#[derive(Debug)]
pub struct Telemetry {
    outbox: PathBuf,
    record: Record<TelemetryState>,
    state: TelemetryState,
    max_queued: usize,
    /// Where the kernel's counters are read (`/proc`; a test points elsewhere).
    proc_dir: PathBuf,
    /// Where interface addresses are read (`/sys`; a test points elsewhere).
    sys_dir: PathBuf,
}

impl Telemetry {
    /// Opens the telemetry of the agent in `dir`.
    pub fn open(dir: &Path, max_queued: usize) -> Result<Self, Error> {
        let outbox = dir.join("telemetry");
        std::fs::create_dir_all(&outbox).map_err(Error::io("creating", &outbox))?;
        // A batch torn by a crash never reached its name; its temporary file is dropped.
        medsec_util::fs::remove_stale_temporaries(&outbox);
        let mut record = Record::new(dir, "telemetry");
        let mut state: TelemetryState = record.load().unwrap_or_default();
        state.next_sequence = state.next_sequence.max(1);
        Ok(Self {
            outbox,
            record,
            state,
            max_queued: max_queued.max(1),
            proc_dir: PathBuf::from("/proc"),
            sys_dir: PathBuf::from("/sys"),
        })
    }

    /// The record (for `agent status`).
    pub fn state(&self) -> &TelemetryState {
        &self.state
    }

    /// Queues a security event (`boot`, `update_installed`, `update_failed`, …).
    pub fn security(&mut self, event: &str, detail: &str) -> Result<(), Error> {
        let detail: String = detail
            .chars()
            .filter(|c| !c.is_control())
            .take(256)
            .collect();
        self.queue(json!({
            "kind": "security", "at_ms": now_ms(), "event": event, "detail": detail,
        }))
    }

    /// Queues any event of the telemetry form (docs/defender.md): how a device maker's
    /// integration feeds flow summaries and clinical-data integrity signals. The server checks
    /// the form; a malformed event makes its whole batch refused, so integrations should test
    /// theirs.
    pub fn queue(&mut self, event: Value) -> Result<(), Error> {
        self.state.pending.push(event);
        // A device that cannot reach the server for long keeps only the newest events.
        let excess = self
            .state
            .pending
            .len()
            .saturating_sub(MAX_EVENTS_PER_BATCH);
        self.state.pending.drain(..excess);
        self.record.save(&self.state)
    }

    fn metrics(&mut self) -> Vec<Value> {
        let at_ms = now_ms();
        let mut out = Vec::new();
        let counters = std::fs::read_to_string(self.proc_dir.join("net/dev"))
            .ok()
            .and_then(|t| parse_net_dev(&t));
        if let Some(now) = counters {
            // Counters only grow; after a reboot they start again, and that interval is skipped.
            if let Some(then) = self
                .state
                .counters
                .filter(|t| t.bytes_in <= now.bytes_in && t.bytes_out <= now.bytes_out)
            {
                for (name, value) in [
                    ("bytes_in", now.bytes_in - then.bytes_in),
                    ("bytes_out", now.bytes_out - then.bytes_out),
                    ("packets_in", now.packets_in.saturating_sub(then.packets_in)),
                    (
                        "packets_out",
                        now.packets_out.saturating_sub(then.packets_out),
                    ),
                ] {
                    out.push(
                        json!({"kind": "metric", "at_ms": at_ms, "name": name, "value": value}),
                    );
                }
            }
            self.state.counters = Some(now);
        }
        let mut ports = Vec::new();
        let mut read_any = false;
        for file in ["net/tcp", "net/tcp6"] {
            if let Ok(text) = std::fs::read_to_string(self.proc_dir.join(file)) {
                read_any = true;
                ports.extend(parse_listening(&text));
            }
        }
        // The MAC of the interface the device reaches the network through, which the server
        // binds to the device on first sight (identity binding, docs/defender.md).
        let mac = std::fs::read_to_string(self.proc_dir.join("net/route"))
            .ok()
            .and_then(|t| parse_default_interface(&t))
            .filter(|i| !i.contains(['/', '.']))
            .and_then(|i| {
                std::fs::read_to_string(self.sys_dir.join("class/net").join(i).join("address")).ok()
            })
            .and_then(|t| usable_mac(&t));
        if let Some(mac) = mac {
            out.push(json!({"kind": "identity", "at_ms": at_ms, "mac": mac}));
        }
        if read_any {
            ports.sort_unstable();
            ports.dedup();
            let values: Vec<String> = ports.iter().map(u16::to_string).collect();
            out.push(json!({
                "kind": "metric", "at_ms": at_ms, "name": "listening_tcp_ports", "values": values,
            }));
        }
        out
    }

    fn batch_path(&self, sequence: i64) -> PathBuf {
        self.outbox.join(format!("{sequence:012}.json"))
    }

    /// Seals waiting events and fresh metrics into the next batch file.
    pub fn seal(&mut self) -> Result<(), Error> {
        let mut events = std::mem::take(&mut self.state.pending);
        events.extend(self.metrics());
        if events.is_empty() {
            return self.record.save(&self.state);
        }
        let sequence = self.state.next_sequence;
        let body = json!({"sequence": sequence, "events": events});
        crate::write_atomic(
            &self.batch_path(sequence),
            body.to_string().as_bytes(),
            Access::Public,
        )?;
        self.state.next_sequence = sequence
            .checked_add(1)
            .ok_or_else(|| Error::State("telemetry sequence numbers are exhausted".into()))?;
        self.record.save(&self.state)?;
        self.trim()
    }

    /// The waiting batch files, oldest first.
    fn queued(&self) -> Result<Vec<(i64, PathBuf)>, Error> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.outbox).map_err(Error::io("reading", &self.outbox))? {
            let path = entry.map_err(Error::io("reading", &self.outbox))?.path();
            let seq = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<i64>().ok());
            if let Some(seq) = seq {
                out.push((seq, path));
            }
        }
        out.sort();
        Ok(out)
    }

    fn trim(&mut self) -> Result<(), Error> {
        let queued = self.queued()?;
        let excess = queued.len().saturating_sub(self.max_queued);
        for (_, path) in queued.iter().take(excess) {
            std::fs::remove_file(path).map_err(Error::io("removing", path))?;
            self.state.dropped = self.state.dropped.saturating_add(1);
        }
        if excess > 0 {
            self.record.save(&self.state)?;
        }
        Ok(())
    }

    /// Moves the waiting batch `sequence` (file `path`, content `body`) to the number after
    /// `last`, the server's newest, never past what the record has handed out (a later batch
    /// may hold that number). Refuses, keeping the batch, rather than overwrite another waiting
    /// batch or wrap around: an unsent batch is never discarded.
    fn renumber(
        &mut self,
        sequence: i64,
        path: &Path,
        body: &[u8],
        last: i64,
    ) -> Result<(), Error> {
        let after_last = last.checked_add(1).ok_or_else(|| {
            Error::Refused(format!(
                "telemetry batch {sequence}: the server's last sequence number is {last}, the \
                 largest there is; an operator must reset the device's telemetry cursor \
                 (POST /api/v1/devices/ID/telemetry/reset)"
            ))
        })?;
        let next = if last >= sequence {
            after_last.max(self.state.next_sequence)
        } else {
            after_last
        };
        let target = self.batch_path(next);
        if target.exists() {
            return Err(Error::State(format!(
                "telemetry batch {sequence} cannot be renumbered {next}: another waiting batch \
                 holds that number"
            )));
        }
        let mut batch: Value = serde_json::from_slice(body)
            .map_err(|e| Error::State(format!("{}: {e}", path.display())))?;
        if let Some(o) = batch.as_object_mut() {
            o.insert("sequence".into(), json!(next));
        }
        crate::write_atomic(&target, batch.to_string().as_bytes(), Access::Public)?;
        let after = next
            .checked_add(1)
            .ok_or_else(|| Error::State("telemetry sequence numbers are exhausted".into()))?;
        self.state.next_sequence = self.state.next_sequence.max(after);
        self.record.save(&self.state)?;
        std::fs::remove_file(path).map_err(Error::io("removing", path))
    }

    /// Sends the waiting batches, oldest first, through `post` (which returns the HTTP status
    /// and body). Stops at the first that does not go through; returns how many went.
    pub fn send(
        &mut self,
        mut post: impl FnMut(&[u8]) -> Result<(u16, String), Error>,
    ) -> Result<usize, Error> {
        let mut sent = 0;
        for (sequence, path) in self.queued()? {
            let body = std::fs::read(&path).map_err(Error::io("reading", &path))?;
            let (status, answer) = post(&body)?;
            match status {
                200 => {}
                409 => {
                    let last = serde_json::from_str::<medsec_api::telemetry::Replayed>(&answer)
                        .map(|r| r.last_sequence)
                        .map_err(|_| {
                            Error::Refused(format!(
                                "telemetry batch {sequence}: HTTP 409: {answer}"
                            ))
                        })?;
                    // The number was used for other events (numbered from a lost record), or
                    // jumps too far ahead of the server. Either way the events go again as
                    // the batch right after the server's newest. (A batch stored already is
                    // answered 200, `"duplicate": true`.)
                    self.renumber(sequence, &path, &body, last)?;
                    return Ok(sent);
                }
                other => {
                    return Err(Error::Refused(format!(
                        "telemetry batch {sequence}: HTTP {other}: {answer}"
                    )));
                }
            }
            std::fs::remove_file(&path).map_err(Error::io("removing", &path))?;
            sent += 1;
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  123456     100    0    0    0     0          0         0   123456     100    0    0    0     0       0          0
  eth0: 1000000    2000    0    0    0     0          0         0   500000    1500    0    0    0     0       0          0
  wlan0:    10       1    0    0    0     0          0         0       20       2    0    0    0     0       0          0
";

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:01BB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   2: 0A00010F:C350 0A000196:0457 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn kernel_counters_and_listening_ports_parse() {
        let c = parse_net_dev(NET_DEV).unwrap();
        assert_eq!(
            c,
            Counters {
                bytes_in: 1_000_010,
                packets_in: 2_001,
                bytes_out: 500_020,
                packets_out: 1_502
            }
        );
        // 0x01BB = 443 and 0x0016 = 22 listen; the established 0xC350 does not.
        assert_eq!(parse_listening(TCP), vec![22, 443]);
        assert_eq!(parse_net_dev("garbage"), None);
        assert!(parse_listening("").is_empty());
        let route = "Iface\tDestination\tGateway\tFlags\n\
                     eth1\t0A000000\t00000000\t0001\n\
                     eth0\t00000000\t0100000A\t0003\n";
        assert_eq!(parse_default_interface(route).as_deref(), Some("eth0"));
        assert_eq!(parse_default_interface("Iface\tDestination\n"), None);
        assert_eq!(
            usable_mac("02:42:AC:11:00:02\n").as_deref(),
            Some("02:42:ac:11:00:02")
        );
        assert_eq!(usable_mac("00:00:00:00:00:00"), None);
        assert_eq!(usable_mac("not a mac"), None);
    }

    #[test]
    fn the_default_interface_mac_is_reported_for_identity_binding() {
        let tmp = tempfile::tempdir().unwrap();
        let proc_dir = fake_proc(tmp.path(), 1);
        std::fs::write(
            proc_dir.join("net/route"),
            "Iface\tDestination\tGateway\neth0\t00000000\t0100000A\n",
        )
        .unwrap();
        let sys = tmp.path().join("sys");
        std::fs::create_dir_all(sys.join("class/net/eth0")).unwrap();
        std::fs::write(sys.join("class/net/eth0/address"), "02:00:00:aa:bb:cc\n").unwrap();
        let mut t = Telemetry::open(tmp.path(), 10).unwrap();
        t.proc_dir = proc_dir;
        t.sys_dir = sys;
        let events = t.metrics();
        assert!(
            events
                .iter()
                .any(|e| e["kind"] == "identity" && e["mac"] == "02:00:00:aa:bb:cc"),
            "{events:?}"
        );
    }

    fn fake_proc(dir: &Path, bytes_out: u64) -> PathBuf {
        let p = dir.join("proc");
        std::fs::create_dir_all(p.join("net")).unwrap();
        std::fs::write(
            p.join("net/dev"),
            NET_DEV.replace("500000", &bytes_out.to_string()),
        )
        .unwrap();
        std::fs::write(p.join("net/tcp"), TCP).unwrap();
        p
    }

    #[test]
    fn batches_survive_an_offline_server_and_go_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let mut t = Telemetry::open(tmp.path(), 10).unwrap();
        t.proc_dir = fake_proc(tmp.path(), 500_000);
        t.security("boot", "slot A 1.0.0").unwrap();
        t.seal().unwrap();
        t.proc_dir = fake_proc(tmp.path(), 590_000);
        t.security("update_installed", "1.2.0").unwrap();
        t.seal().unwrap();
        // The server is down: nothing leaves, nothing is lost.
        let err = t.send(|_| Err(Error::Network("connection refused".into())));
        assert!(err.is_err());
        assert_eq!(t.queued().unwrap().len(), 2);
        // It is back: both go, oldest first; the second holds the 90,000 bytes sent between.
        let mut seen = Vec::new();
        let sent = t
            .send(|body| {
                seen.push(serde_json::from_slice::<Value>(body).unwrap());
                Ok((200, "{}".into()))
            })
            .unwrap();
        assert_eq!(sent, 2);
        assert_eq!(seen[0]["sequence"], 1);
        assert_eq!(seen[1]["sequence"], 2);
        assert_eq!(seen[0]["events"][0]["event"], "boot");
        let out = seen[1]["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "bytes_out")
            .unwrap();
        assert_eq!(out["value"], 90_000);
        assert!(t.queued().unwrap().is_empty());
        // A reopened record goes on numbering.
        let t2 = Telemetry::open(tmp.path(), 10).unwrap();
        assert_eq!(t2.state().next_sequence, 3);
    }

    #[test]
    fn a_batch_torn_by_a_crash_is_dropped_on_open_and_the_sealed_ones_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let mut t = Telemetry::open(tmp.path(), 10).unwrap();
        t.proc_dir = fake_proc(tmp.path(), 1_000);
        t.security("boot", "slot A 1.0.0").unwrap();
        t.seal().unwrap();
        // A crash between writing a batch's temporary file and renaming it into place.
        let outbox = tmp.path().join("telemetry");
        let torn = outbox.join(format!("{}half", medsec_util::fs::TEMP_PREFIX));
        std::fs::write(&torn, b"{\"sequence\": 2, \"ev").unwrap();
        let t = Telemetry::open(tmp.path(), 10).unwrap();
        assert!(!torn.exists(), "the torn temporary file is still there");
        assert_eq!(t.queued().unwrap().len(), 1);
    }

    #[test]
    fn a_lost_answer_is_not_sent_twice_and_a_lost_record_renumbers() {
        let tmp = tempfile::tempdir().unwrap();
        let mut t = Telemetry::open(tmp.path(), 10).unwrap();
        t.proc_dir = tmp.path().join("no-proc");
        t.security("boot", "").unwrap();
        t.seal().unwrap();
        // The server stored batch 1 but the answer was lost: sent again, it is answered as a
        // duplicate (200), and the file goes.
        let n = t
            .send(|_| Ok((200, r#"{"accepted":1,"events":0,"duplicate":true}"#.into())))
            .unwrap();
        assert_eq!(n, 1);
        assert!(t.queued().unwrap().is_empty());
        // A 409 naming the batch's own number: that number holds other events on the server
        // (numbered from a lost record); the batch goes again as the next number, never
        // dropped.
        t.security("boot", "again").unwrap();
        t.seal().unwrap();
        t.send(|_| Ok((409, r#"{"error":"…","last_sequence":2}"#.into())))
            .unwrap();
        let q: Vec<i64> = t.queued().unwrap().iter().map(|q| q.0).collect();
        assert_eq!(q, [3]);
        t.send(|_| Ok((200, "{}".into()))).unwrap();
        // The record is lost (numbering restarts at 1) while the server is at 40.
        for copy in ["telemetry.0", "telemetry.1"] {
            let _ = std::fs::remove_file(tmp.path().join(copy));
        }
        let mut t = Telemetry::open(tmp.path(), 10).unwrap();
        t.proc_dir = tmp.path().join("no-proc");
        t.security("boot", "").unwrap();
        t.seal().unwrap();
        t.send(|_| Ok((409, r#"{"error":"…","last_sequence":40}"#.into())))
            .unwrap();
        let q = t.queued().unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].0, 41);
        assert_eq!(t.state().next_sequence, 42);
        // A 409 without a number is an error, and the batch stays.
        assert!(t.send(|_| Ok((409, "no".into()))).is_err());
        assert_eq!(t.queued().unwrap().len(), 1);
    }

    #[test]
    fn a_refused_jump_renumbers_down_and_a_cursor_at_the_maximum_keeps_the_batch() {
        let tmp = tempfile::tempdir().unwrap();
        let mut t = Telemetry::open(tmp.path(), 10).unwrap();
        t.proc_dir = tmp.path().join("no-proc");
        t.state.next_sequence = 5_000_000;
        for i in 0..2 {
            t.security("boot", &format!("boot {i}")).unwrap();
            t.seal().unwrap();
        }
        // The server is at 10 and refuses 5,000,000 as a jump: it goes again as 11, and the
        // later batch keeps its number (it is refused and moved in turn).
        t.send(|_| Ok((409, r#"{"error":"…","last_sequence":10}"#.into())))
            .unwrap();
        let q: Vec<i64> = t.queued().unwrap().iter().map(|q| q.0).collect();
        assert_eq!(q, [11, 5_000_001]);
        assert_eq!(t.state().next_sequence, 5_000_002);
        let mut sent = Vec::new();
        t.send(|body| {
            let b: Value = serde_json::from_slice(body).unwrap();
            sent.push(b["sequence"].as_i64().unwrap());
            Ok(if sent.len() == 1 {
                (200, "{}".into())
            } else {
                (409, r#"{"error":"…","last_sequence":11}"#.into())
            })
        })
        .unwrap();
        assert_eq!(sent, [11, 5_000_001]);
        let q: Vec<i64> = t.queued().unwrap().iter().map(|q| q.0).collect();
        assert_eq!(q, [12]);

        // A server whose cursor was pushed to the largest number: nothing is renumbered past
        // it, and the batch stays (before, it was deleted as "already stored").
        let answer = format!(r#"{{"error":"…","last_sequence":{}}}"#, i64::MAX);
        for _ in 0..3 {
            let err = t.send(|_| Ok((409, answer.clone()))).unwrap_err();
            assert!(err.to_string().contains("reset"), "{err}");
        }
        let q: Vec<i64> = t.queued().unwrap().iter().map(|q| q.0).collect();
        assert_eq!(q, [12], "the unsent batch is still there");
        // Renumbering never overwrites another waiting batch.
        t.security("boot", "later").unwrap();
        t.seal().unwrap();
        let q: Vec<i64> = t.queued().unwrap().iter().map(|q| q.0).collect();
        assert_eq!(q, [12, 5_000_002]);
        let before = std::fs::read(t.batch_path(5_000_002)).unwrap();
        t.state.next_sequence = 0;
        let err = t
            .send(|_| Ok((409, r#"{"error":"…","last_sequence":5000001}"#.into())))
            .unwrap_err();
        assert!(err.to_string().contains("another waiting batch"), "{err}");
        assert_eq!(std::fs::read(t.batch_path(5_000_002)).unwrap(), before);
        assert_eq!(t.queued().unwrap().len(), 2);
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_and_counts_them() {
        let tmp = tempfile::tempdir().unwrap();
        let mut t = Telemetry::open(tmp.path(), 2).unwrap();
        t.proc_dir = tmp.path().join("no-proc");
        for i in 0..5 {
            t.security("boot", &format!("boot {i}")).unwrap();
            t.seal().unwrap();
        }
        let q: Vec<i64> = t.queued().unwrap().iter().map(|q| q.0).collect();
        assert_eq!(q, vec![4, 5]);
        assert_eq!(t.state().dropped, 3);
    }
}
