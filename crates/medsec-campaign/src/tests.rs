#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "test code"
)]

use super::*;

/// 2026-11-28 12:00:00 UTC.
const NOON: i64 = 1_795_867_200_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

fn spec(name: &str) -> Spec {
    Spec {
        name: name.into(),
        release: Release {
            version: "1.1.0".into(),
            release_counter: 11,
            target: "pump-1.1.0.img".into(),
        },
        canary: WaveSize::Count(50),
        growth: 2.0,
        max_failure_rate: 0.2,
        advance_when_finished: 0.9,
        report_timeout_ms: HOUR,
        windows: BTreeMap::new(),
    }
}

fn fleet(n: usize) -> Vec<Member> {
    (0..n)
        .map(|i| Member {
            device: format!("pump-{i:05}"),
            site: if i.is_multiple_of(2) {
                "north"
            } else {
                "south"
            }
            .into(),
        })
        .collect()
}

/// splitmix64: a seeded, reproducible source of injected failures.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Every device polls once per round and reports at once; a device fails with probability
/// `failure_rate`. Returns the campaign when it stops running (or after 100 rounds), and the
/// devices that were ever offered the release.
fn simulate(n: usize, failure_rate: f64, seed: u64) -> (Campaign, Vec<String>) {
    let mut c = Campaign::plan(spec(&format!("sim-{seed}")), &fleet(n)).unwrap();
    let mut rng = Rng(seed);
    let mut now = NOON;
    c.start(now).unwrap();
    let mut offered = Vec::new();
    for _ in 0..100 {
        if c.status() != &Status::Running {
            break;
        }
        for m in fleet(n) {
            now += 1;
            if c.status() != &Status::Running {
                break;
            }
            if let Offer::Install { .. } = c.offer(&m.device, false, now).unwrap() {
                offered.push(m.device.clone());
                let outcome = if rng.next() < failure_rate {
                    Outcome::Failed {
                        reason: "health check failed; rolled back".into(),
                    }
                } else {
                    Outcome::Succeeded
                };
                c.report(&m.device, outcome, now).unwrap();
            }
        }
    }
    (c, offered)
}

#[test]
fn waves_start_with_the_canary_and_grow() {
    let c = Campaign::plan(spec("w"), &fleet(1000)).unwrap();
    let sizes: Vec<usize> = c.waves().iter().map(Vec::len).collect();
    assert_eq!(sizes, [50, 100, 200, 400, 250]);
    let mut s = spec("w");
    s.canary = WaveSize::Percent(1.5);
    s.growth = 10.0;
    let c = Campaign::plan(s, &fleet(1000)).unwrap();
    let sizes: Vec<usize> = c.waves().iter().map(Vec::len).collect();
    assert_eq!(sizes, [15, 150, 835]);
    // The canary is spread over the fleet, not its first ids: both sites are in it.
    let c = Campaign::plan(spec("w"), &fleet(1000)).unwrap();
    let canary = &c.waves()[0];
    assert!(
        canary.iter().any(|d| d.as_str() > "pump-00500"),
        "{canary:?}"
    );
    assert!(
        canary.iter().any(|d| d.as_str() < "pump-00500"),
        "{canary:?}"
    );
    // The same name plans the same waves.
    assert_eq!(
        Campaign::plan(spec("w"), &fleet(1000)).unwrap().waves(),
        c.waves()
    );
}

#[test]
fn a_healthy_release_completes_across_1000_devices() {
    let (c, offered) = simulate(1000, 0.0, 1);
    assert!(
        matches!(c.status(), Status::Completed { .. }),
        "{:?}",
        c.status()
    );
    assert_eq!(offered.len(), 1000);
    assert!(c.progress().iter().all(|w| w.succeeded == w.size));
}

#[test]
fn a_five_percent_failure_rate_never_halts() {
    for seed in 0..20 {
        let (c, _) = simulate(1000, 0.05, seed);
        assert!(
            matches!(c.status(), Status::Completed { .. }),
            "seed {seed}: {:?}",
            c.status()
        );
        let failed: usize = c.progress().iter().map(|w| w.failed).sum();
        assert!((20..=90).contains(&failed), "seed {seed}: {failed} failed");
    }
}

#[test]
fn a_broken_build_halts_within_the_canary_wave() {
    for seed in 0..20 {
        let (c, offered) = simulate(1000, 0.5, seed);
        let Status::Halted { reason, .. } = c.status() else {
            panic!("seed {seed}: {:?}", c.status());
        };
        assert!(reason.starts_with("wave 0 failed on 11 of 50"), "{reason}");
        // Nobody outside the canary was ever offered the build, and nothing more is offered.
        let canary = c.waves()[0].clone();
        assert!(offered.iter().all(|d| canary.contains(d)), "seed {seed}");
        assert!(offered.len() <= 50);
        let p = c.progress();
        assert!(p[1..].iter().all(|w| !w.open && w.waiting == w.size));
        let mut c = c;
        let waiting = canary
            .iter()
            .find(|d| matches!(c.device(d), Some((_, DeviceState::Waiting))));
        if let Some(d) = waiting.cloned() {
            assert!(matches!(
                c.offer(&d, false, NOON + HOUR).unwrap(),
                Offer::Wait { .. }
            ));
        }
        assert!(matches!(
            c.resume(NOON),
            Err(Error::Status {
                status: "halted",
                ..
            })
        ));
        c.abort(NOON).unwrap();
    }
}

#[test]
fn devices_in_clinical_use_are_deferred_not_failed() {
    let mut s = spec("clinical");
    s.canary = WaveSize::Count(10);
    s.advance_when_finished = 0.8;
    let members = fleet(10);
    let mut c = Campaign::plan(s, &members).unwrap();
    c.start(NOON).unwrap();
    // Two pumps are running infusions when they poll.
    let busy = ["pump-00003", "pump-00007"];
    for m in &members {
        let in_use = busy.contains(&m.device.as_str());
        match c.offer(&m.device, in_use, NOON).unwrap() {
            Offer::Deferred => assert!(in_use),
            Offer::Install { .. } => {
                assert!(!in_use);
                c.report(&m.device, Outcome::Succeeded, NOON).unwrap();
            }
            other => panic!("{other:?}"),
        }
    }
    let p = &c.progress()[0];
    assert_eq!((p.deferred, p.succeeded, p.failed), (2, 8, 0));
    assert_eq!(
        c.status(),
        &Status::Running,
        "deferred devices keep it open"
    );
    // Even far past the report timeout they are not failed.
    c.tick(NOON + 10 * HOUR);
    assert_eq!(c.progress()[0].failed, 0);
    // Therapy ends: the next poll offers the release.
    for d in busy {
        assert!(matches!(
            c.offer(d, false, NOON + 11 * HOUR).unwrap(),
            Offer::Install { .. }
        ));
        c.report(d, Outcome::Succeeded, NOON + 11 * HOUR).unwrap();
    }
    assert!(matches!(c.status(), Status::Completed { .. }));
    // A device offered the release may still defer if therapy starts before it installs.
    let mut c = Campaign::plan(spec("late"), &fleet(3)).unwrap();
    c.start(NOON).unwrap();
    c.offer("pump-00001", false, NOON).unwrap();
    c.report(
        "pump-00001",
        Outcome::Deferred {
            reason: "infusion started".into(),
        },
        NOON,
    )
    .unwrap();
    assert!(matches!(
        c.device("pump-00001"),
        Some((_, DeviceState::Deferred { reason, .. })) if reason == "infusion started"
    ));
}

#[test]
fn maintenance_windows_are_respected_in_the_sites_time_zone() {
    let mut s = spec("windows");
    s.canary = WaveSize::Count(2);
    s.windows.insert(
        "north".into(),
        WindowSpec {
            cron: "0 2 * * *".into(),
            duration_minutes: 180,
            time_zone: "Europe/Berlin".into(),
        },
    );
    let members = vec![
        Member {
            device: "north-1".into(),
            site: "north".into(),
        },
        Member {
            device: "south-1".into(),
            site: "south".into(),
        },
    ];
    let mut c = Campaign::plan(s, &members).unwrap();
    c.start(NOON).unwrap();
    // Noon UTC is 13:00 in Berlin: north waits until 02:00 Berlin (01:00 UTC next day).
    let Offer::Wait {
        reason,
        retry_at_ms,
    } = c.offer("north-1", false, NOON).unwrap()
    else {
        panic!("north must wait")
    };
    assert!(reason.contains("maintenance window"), "{reason}");
    assert_eq!(retry_at_ms, Some(NOON + 13 * HOUR));
    // South has no window.
    assert!(matches!(
        c.offer("south-1", false, NOON).unwrap(),
        Offer::Install { .. }
    ));
    // Inside the window (02:30 Berlin) and just before it closes (04:59), then closed (05:00).
    assert!(matches!(
        c.offer("north-1", false, NOON + 13 * HOUR + 30 * MINUTE)
            .unwrap(),
        Offer::Install { .. }
    ));
    let w = Window::new(
        "north",
        &WindowSpec {
            cron: "0 2 * * *".into(),
            duration_minutes: 180,
            time_zone: "Europe/Berlin".into(),
        },
    )
    .unwrap();
    assert!(w.is_open(NOON + 15 * HOUR + 59 * MINUTE).unwrap());
    assert!(!w.is_open(NOON + 16 * HOUR).unwrap());
    assert!(!w.is_open(NOON + 13 * HOUR - MINUTE).unwrap());
    // The same instant is inside a New York window at 02:00 local only at 07:00 UTC.
    let ny = Window::new(
        "east",
        &WindowSpec {
            cron: "0 2 * * *".into(),
            duration_minutes: 60,
            time_zone: "America/New_York".into(),
        },
    )
    .unwrap();
    assert!(!ny.is_open(NOON + 13 * HOUR + 30 * MINUTE).unwrap());
    assert!(ny.is_open(NOON + 19 * HOUR + 30 * MINUTE).unwrap());
    // Weekday windows: Sundays only (2026-11-29 is a Sunday).
    let sunday = Window::new(
        "s",
        &WindowSpec {
            cron: "0 2 * * SUN".into(),
            duration_minutes: 60,
            time_zone: "UTC".into(),
        },
    )
    .unwrap();
    assert_eq!(sunday.next_open(NOON).unwrap(), Some(NOON + 14 * HOUR));
    assert!(
        !sunday
            .is_open(NOON + 14 * HOUR + 7 * 24 * HOUR - MINUTE)
            .unwrap()
    );
}

#[test]
fn silent_devices_time_out_and_count_as_failed() {
    let mut s = spec("timeout");
    s.canary = WaveSize::Count(4);
    s.max_failure_rate = 0.5;
    let mut c = Campaign::plan(s, &fleet(4)).unwrap();
    c.start(NOON).unwrap();
    for m in fleet(4) {
        c.offer(&m.device, false, NOON).unwrap();
    }
    c.tick(NOON + HOUR);
    assert_eq!(c.progress()[0].failed, 0, "not yet past the timeout");
    c.tick(NOON + HOUR + 1);
    assert_eq!(c.progress()[0].failed, 4);
    assert!(matches!(c.status(), Status::Halted { .. }));
}

#[test]
fn reports_need_an_offer_and_operators_control_the_state() {
    let mut c = Campaign::plan(spec("ops"), &fleet(100)).unwrap();
    assert!(matches!(
        c.offer("pump-00001", false, NOON).unwrap(),
        Offer::Wait { .. }
    ));
    c.start(NOON).unwrap();
    let d = c.waves()[0][0].clone();
    let later = c.waves()[1][0].clone();
    assert!(matches!(
        c.report(&d, Outcome::Succeeded, NOON),
        Err(Error::Unexpected {
            state: "waiting",
            ..
        })
    ));
    assert!(matches!(
        c.offer("ghost", false, NOON),
        Err(Error::UnknownDevice { .. })
    ));
    let Offer::Wait { reason, .. } = c.offer(&later, false, NOON).unwrap() else {
        panic!()
    };
    assert_eq!(reason, "wave 1 is not open yet");
    let installing = c.waves()[0][1].clone();
    assert!(matches!(
        c.offer(&installing, false, NOON).unwrap(),
        Offer::Install { .. }
    ));
    c.pause().unwrap();
    assert!(
        matches!(c.offer(&d, false, NOON).unwrap(), Offer::Wait { reason, .. } if reason == "campaign is paused")
    );
    // A device already installing keeps its offer while paused.
    assert!(matches!(
        c.offer(&installing, false, NOON).unwrap(),
        Offer::Install { .. }
    ));
    assert!(matches!(c.start(NOON), Err(Error::Status { .. })));
    c.resume(NOON).unwrap();
    assert!(matches!(
        c.offer(&d, false, NOON).unwrap(),
        Offer::Install { .. }
    ));
    c.report(&d, Outcome::Succeeded, NOON).unwrap();
    assert!(matches!(
        c.report(&d, Outcome::Succeeded, NOON),
        Err(Error::Unexpected {
            state: "succeeded",
            ..
        })
    ));
    assert_eq!(c.offer(&d, false, NOON).unwrap(), Offer::Done);
    c.abort(NOON).unwrap();
    // Aborted: not even a device that was installing gets the offer again.
    assert!(matches!(
        c.offer(&installing, false, NOON).unwrap(),
        Offer::Wait { .. }
    ));
    assert!(matches!(c.abort(NOON), Err(Error::Status { .. })));
}

#[test]
fn bad_specs_are_refused_and_named() {
    type Case = (fn(&mut Spec), &'static str);
    let cases: [Case; 7] = [
        (|s| s.canary = WaveSize::Count(0), "canary"),
        (|s| s.canary = WaveSize::Percent(120.0), "canary"),
        (|s| s.growth = 0.5, "growth"),
        (|s| s.max_failure_rate = 1.5, "max_failure_rate"),
        (|s| s.release.target = String::new(), "release"),
        (
            |s| {
                s.windows.insert(
                    "x".into(),
                    WindowSpec {
                        cron: "61 * * * *".into(),
                        duration_minutes: 60,
                        time_zone: "UTC".into(),
                    },
                );
            },
            "cron \"61 * * * *\"",
        ),
        (
            |s| {
                s.windows.insert(
                    "x".into(),
                    WindowSpec {
                        cron: "0 2 * * *".into(),
                        duration_minutes: 60,
                        time_zone: "Mars/Olympus".into(),
                    },
                );
            },
            "unknown time zone \"Mars/Olympus\"",
        ),
    ];
    for (change, want) in cases {
        let mut s = spec("bad");
        change(&mut s);
        let err = Campaign::plan(s, &fleet(3)).unwrap_err().to_string();
        assert!(err.contains(want), "{err:?} should name {want:?}");
    }
    assert!(matches!(
        Campaign::plan(spec("empty"), &[]),
        Err(Error::Spec {
            field: "devices",
            ..
        })
    ));
}

#[test]
fn a_stored_campaign_continues_where_it_stopped() {
    let mut s = spec("stored");
    s.canary = WaveSize::Count(4);
    s.windows.insert(
        "north".into(),
        WindowSpec {
            cron: "0 2 * * *".into(),
            duration_minutes: 60,
            time_zone: "UTC".into(),
        },
    );
    let mut c = Campaign::plan(s, &fleet(4)).unwrap();
    c.start(NOON).unwrap();
    // pump-00000 and pump-00002 are at the north site.
    let at_two = NOON + 14 * HOUR + 30 * MINUTE;
    assert!(matches!(
        c.offer("pump-00000", false, at_two).unwrap(),
        Offer::Install { .. }
    ));
    let json = serde_json::to_string(&c).unwrap();
    let mut back: Campaign = serde_json::from_str(&json).unwrap();
    back.compile_windows().unwrap();
    assert_eq!(back.progress(), c.progress());
    assert_eq!(back.status(), c.status());
    back.report("pump-00000", Outcome::Succeeded, at_two)
        .unwrap();
    // The north window still applies after the round trip.
    let Offer::Wait { reason, .. } = back.offer("pump-00002", false, NOON).unwrap() else {
        panic!("north is outside its window at noon")
    };
    assert!(reason.contains("maintenance window"), "{reason}");
}

proptest::proptest! {
    /// Every device lands in exactly one wave; the first wave is the canary; waves never shrink
    /// except the last.
    #[test]
    fn waves_partition_the_selection(n in 1usize..400, canary in 1u32..500, growth in 1.0f64..8.0) {
        let mut s = spec("prop");
        s.canary = WaveSize::Count(canary);
        s.growth = growth;
        let c = Campaign::plan(s, &fleet(n)).unwrap();
        let mut all: Vec<&String> = c.waves().iter().flatten().collect();
        all.sort();
        all.dedup();
        proptest::prop_assert_eq!(all.len(), n);
        proptest::prop_assert_eq!(c.waves().iter().map(Vec::len).sum::<usize>(), n);
        proptest::prop_assert_eq!(c.waves()[0].len(), (canary as usize).min(n));
        let sizes: Vec<usize> = c.waves().iter().map(Vec::len).collect();
        if sizes.len() > 2 {
            proptest::prop_assert!(sizes[..sizes.len() - 1].windows(2).all(|w| w[0] <= w[1]));
        }
    }
}

#[test]
fn a_withdrawn_device_counts_in_no_wave_and_never_halts_the_campaign() {
    let mut s = spec("withdraw");
    s.canary = WaveSize::Count(4);
    s.max_failure_rate = 0.25;
    let mut c = Campaign::plan(s, &fleet(8)).unwrap();
    c.start(NOON).unwrap();
    let canary = c.waves()[0].clone();
    // Two canaries are offered and then decommissioned: had they timed out, 2 of 4 would
    // have failed and halted the campaign.
    for d in &canary[..2] {
        assert!(matches!(
            c.offer(d, false, NOON).unwrap(),
            Offer::Install { .. }
        ));
        assert!(c.withdraw(d, "decommissioned", NOON + 1));
        assert_eq!(c.offer(d, false, NOON + 2).unwrap(), Offer::Done);
        assert!(c.report(d, Outcome::Succeeded, NOON + 2).is_err());
    }
    c.tick(NOON + 2 * HOUR);
    assert_eq!(c.status(), &Status::Running);
    let p = c.progress();
    assert_eq!((p[0].size, p[0].withdrawn), (2, 2));
    // The other two succeed: the canary is finished, and the next wave opens.
    for d in &canary[2..] {
        c.offer(d, false, NOON + 3 * HOUR).unwrap();
        c.report(d, Outcome::Succeeded, NOON + 3 * HOUR).unwrap();
    }
    assert!(c.progress()[1].open);
    // A finished device keeps its outcome; an unknown one is not withdrawn.
    assert!(!c.withdraw(&canary[2], "decommissioned", NOON + 4 * HOUR));
    assert!(!c.withdraw("no-such-pump", "decommissioned", NOON));
    // Withdrawing every remaining device completes the campaign.
    let rest: Vec<String> = c.waves()[1..].iter().flatten().cloned().collect();
    for d in &rest {
        c.withdraw(d, "decommissioned", NOON + 5 * HOUR);
    }
    assert!(
        matches!(c.status(), Status::Completed { .. }),
        "{:?}",
        c.status()
    );
}
