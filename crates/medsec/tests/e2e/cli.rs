//! The `medsec` and `medsec-tuf-client` command lines end to end, and interop with python-tuf.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use medsec_testkit::ok;

const PASS: &str = "correct horse battery staple";

fn medsec() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_medsec"));
    c.env("MEDSEC_PASSPHRASE", PASS);
    c
}

fn tuf_client() -> Command {
    let exe = Path::new(env!("CARGO_BIN_EXE_medsec")).with_file_name("medsec-tuf-client");
    assert!(
        exe.exists(),
        "{} is not built: run the workspace tests (cargo test --workspace)",
        exe.display()
    );
    Command::new(exe)
}

#[track_caller]
fn fails(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{cmd:?} should have failed");
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

struct Setup {
    tmp: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        Self {
            tmp: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }
    fn repo(&self) -> PathBuf {
        self.path("repo")
    }
    fn image(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, data).unwrap();
        p
    }
    fn add_target(&self, file: &Path, path: &str, extra: &[&str]) -> String {
        ok(medsec()
            .args(["repo", "add-target"])
            .arg(self.repo())
            .arg(file)
            .args([
                "--path",
                path,
                "--hardware-id",
                "acme-ip200",
                "--version",
                "1.2.0",
            ])
            .args(["--release-counter", "12"])
            .args(extra))
    }
    fn publish(&self) -> PathBuf {
        let out = self.path("www");
        ok(medsec()
            .args(["repo", "publish"])
            .arg(self.repo())
            .arg("--out")
            .arg(&out));
        out
    }
    fn client(&self, www: &Path, targets: &[&str], dir: &str) -> Command {
        let mut c = tuf_client();
        c.arg("--metadata-dir")
            .arg(self.path(&format!("{dir}/metadata")))
            .arg("--metadata-url")
            .arg(format!("file://{}/metadata/", www.display()));
        if !targets.is_empty() {
            let td = self.path(&format!("{dir}/targets"));
            std::fs::create_dir_all(&td).unwrap();
            for t in targets {
                c.args(["--target-name", t]);
            }
            c.arg("--target-dir")
                .arg(td)
                .arg("--target-base-url")
                .arg(format!("file://{}/targets/", www.display()))
                .arg("download");
        } else {
            c.arg("refresh");
        }
        c
    }
    fn client_init(&self, dir: &str) {
        ok(tuf_client()
            .arg("--metadata-dir")
            .arg(self.path(&format!("{dir}/metadata")))
            .arg("init")
            .arg(self.repo().join("metadata/1.root.json")));
    }
}

#[test]
fn release_lifecycle_through_the_command_line() {
    let s = Setup::new();
    ok(medsec().args(["repo", "init"]).arg(s.repo()));
    // Keys are encrypted by default.
    let key = std::fs::read_to_string(s.repo().join("keys/targets-1.key")).unwrap();
    assert!(key.contains("MEDSEC ENCRYPTED PRIVATE KEY"));
    let img = s.image("pump.img", &vec![7u8; 300_000]);
    let out = s.add_target(&img, "pump/pump-1.2.0.img", &[]);
    assert!(
        out.contains("added pump/pump-1.2.0.img (300000 bytes"),
        "{out}"
    );
    ok(medsec().args(["repo", "timestamp"]).arg(s.repo()));
    let verify = ok(medsec().args(["repo", "verify"]).arg(s.repo()));
    assert!(verify.contains("repository verifies"), "{verify}");
    // A fresh timestamp (1 day) is not "expiring soon": the warning comes at a quarter left.
    assert!(!verify.contains("warning"), "{verify}");
    let www = s.publish();

    s.client_init("dev");
    ok(&mut s.client(&www, &["pump/pump-1.2.0.img"], "dev"));
    let got = s.path("dev/targets/pump%2Fpump-1.2.0.img");
    assert_eq!(std::fs::read(&got).unwrap(), vec![7u8; 300_000]);
    let mut meta: Vec<String> = std::fs::read_dir(s.path("dev/metadata"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    meta.sort();
    assert_eq!(
        meta,
        [
            "root.json",
            "snapshot.json",
            "targets.json",
            "timestamp.json"
        ]
    );

    // Already downloaded with matching hashes: not fetched again (the mirror copy is gone).
    for e in walk(&www.join("targets")) {
        std::fs::remove_file(e).unwrap();
    }
    ok(&mut s.client(&www, &["pump/pump-1.2.0.img"], "dev"));
    // A missing target fails with exit status 1.
    let out = fails(&mut s.client(&www, &["nope.img"], "dev"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not listed by any role"),
        "{}",
        stderr(&out)
    );
}

/// A firmware SBOM: OpenSSL with a purl and full FDA fields, BusyBox with a CPE only, and a
/// vendor blob with neither (shared with medsec-risk's tests).
const FIRMWARE_SBOM: &str = include_str!("../../../medsec-risk/tests/data/firmware-1.2.0.cdx.json");

#[test]
fn an_sbom_is_checked_scored_and_its_digest_signed_into_the_release() {
    let s = Setup::new();
    let sbom = s.image("acme-ip200-1.2.0.cdx.json", FIRMWARE_SBOM.as_bytes());
    let out = ok(medsec().args(["risk", "sbom"]).arg(&sbom));
    assert!(
        out.contains("CycloneDX 1.6: acme-ip200 1.2.0, 3 components"),
        "{out}"
    );
    assert!(
        out.contains("| vendor-blob | - | unidentifiable (no purl, CPE or supplier) |"),
        "{out}"
    );
    assert!(out.contains("completeness 66.7 / 100"), "{out}");
    assert!(out.contains("missing on: busybox, vendor-blob"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(medsec().args(["risk", "sbom", "--json"]).arg(&sbom))).unwrap();
    assert_eq!(
        json["sbom"]["components"][1]["cpe"],
        "cpe:2.3:a:busybox:busybox:1.35.0:*:*:*:*:*:*:*"
    );
    assert_eq!(json["completeness"]["score"], 66.7);
    let out = fails(
        medsec()
            .args(["risk", "sbom", "--min-completeness", "90"])
            .arg(&sbom),
    );
    assert!(
        stderr(&out).contains("completeness 66.7 is under"),
        "{}",
        stderr(&out)
    );
    // A document that breaks the schema is refused, naming where.
    let broken = s.image(
        "broken.cdx.json",
        FIRMWARE_SBOM
            .replace(r#""type": "application", "#, "")
            .as_bytes(),
    );
    let out = fails(medsec().args(["risk", "sbom"]).arg(&broken));
    assert!(
        stderr(&out).contains("is not a valid CycloneDX 1.6 document")
            && stderr(&out).contains("/components/1"),
        "{}",
        stderr(&out)
    );

    // The release carries the SBOM's digest, format and size in its signed metadata.
    ok(medsec().args(["repo", "init"]).arg(s.repo()));
    let img = s.image("pump.img", &[7u8; 1000]);
    let out = fails(
        medsec()
            .args(["repo", "add-target"])
            .arg(s.repo())
            .arg(&img)
            .args(["--hardware-id", "acme-ip200", "--version", "1.2.0"])
            .args(["--release-counter", "12", "--sbom"])
            .arg(&broken),
    );
    assert!(stderr(&out).contains("/components/1"), "{}", stderr(&out));
    s.add_target(
        &img,
        "pump/pump-1.2.0.img",
        &["--sbom", sbom.to_str().unwrap()],
    );
    let targets: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.repo().join("metadata/targets.json")).unwrap())
            .unwrap();
    let custom = &targets["signed"]["targets"]["pump/pump-1.2.0.img"]["custom"]["medsec"]["sbom"];
    let digest = hex::encode(medsec_crypto::digest::sha256(
        &std::fs::read(&sbom).unwrap(),
    ));
    assert_eq!(custom["sha256"], digest.as_str(), "{targets}");
    assert_eq!(custom["format"], "CycloneDX 1.6");
    assert_eq!(custom["components"], 3);
    ok(medsec().args(["repo", "timestamp"]).arg(s.repo()));
    let verify = ok(medsec().args(["repo", "verify"]).arg(s.repo()));
    assert!(verify.contains("repository verifies"), "{verify}");
}

#[test]
fn cvss_vectors_are_scored_and_bad_ones_named() {
    let out = ok(medsec().args([
        "risk",
        "cvss",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N/E:P/RL:W/RC:C",
        "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
    ]));
    assert!(out.contains("| 3.1 | 6.1 | 5.6 | 5.6 | medium |"), "{out}");
    assert!(out.contains("| 4.0 | 9.3 | - | - | critical |"), "{out}");
    let out = fails(medsec().args(["risk", "cvss", "CVSS:3.1/AV:N/AC:L"]));
    assert!(
        stderr(&out).contains("base metric(s) missing: PR, UI, S, C, I, A"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn firmware_components_are_matched_and_vex_applies_per_product() {
    let s = Setup::new();
    let feed = s.tmp.path().join("feed");
    medsec_testkit::risk::firmware_advisories(&feed);
    let v120 = s.image(
        "ip200-1.2.0.cdx.json",
        medsec_testkit::risk::firmware_sbom("acme-ip200", "1.2.0", "3.0.2", "1.35.0").as_bytes(),
    );
    let v130 = s.image(
        "ip200-1.3.0.cdx.json",
        medsec_testkit::risk::firmware_sbom("acme-ip200", "1.3.0", "3.0.7", "1.36.0").as_bytes(),
    );
    let other = s.image(
        "ip300-2.0.0.cdx.json",
        medsec_testkit::risk::firmware_sbom("acme-ip300", "2.0.0", "3.0.7", "1.35.0").as_bytes(),
    );
    // The manufacturer states ip200 1.2.0 does not run the vulnerable netstat code.
    let vex = s.image(
        "ip200.openvex.json",
        medsec_testkit::risk::firmware_vex().as_bytes(),
    );
    let run = |sbom: &Path, extra: &[&str]| {
        let mut c = medsec();
        c.args(["risk", "match"])
            .arg(sbom)
            .arg("--advisories")
            .arg(&feed)
            .arg("--vex")
            .arg(&vex);
        c.args(extra);
        c
    };
    let out = ok(&mut run(&v120, &[]));
    assert!(
        out.contains("2 advisories from 3 files (0 unread, 0 read with warnings), 1 KEV entries"),
        "{out}"
    );
    assert!(
        out.contains("| openssl | 3.0.2 | matched | CVE-2022-3602 | purl | high | 7.5 | KEV since 2026-11-30 | 3.0.7 | - | - | 3.0.2 is in the generic range [introduced 3.0.0, fixed 3.0.7] |"),
        "{out}"
    );
    assert!(
        out.contains("| busybox | 1.35.0 | matched | CVE-2022-28391 | cpe | high | 8.8 | - | 1.36.0 | not_affected (vulnerable_code_not_in_execute_path) | - | 1.35.0 is in vers:generic/<1.36.0 |"),
        "{out}"
    );
    assert!(
        out.contains("| vendor-blob | - | unidentifiable (no purl, CPE or supplier) |"),
        "{out}"
    );
    assert!(
        out.contains(
            "2 matched, 0 possible, 0 with undetermined findings, 0 clean, 0 incomplete, 1 unidentifiable; 2 findings (1 by cpe, 1 by purl), 1 open after VEX"
        ),
        "{out}"
    );
    // Risk on an infusion pump on the hospital network, on a filtering segment: the
    // exploited OpenSSL flaw leads, BusyBox (not affected per VEX) scores nothing, and every
    // factor is shown.
    let out = ok(&mut run(
        &v120,
        &[
            "--clinical",
            "therapy",
            "--exposure",
            "network",
            "--segmented",
        ],
    ));
    assert!(
        out.contains("| 93.6 critical |") && out.contains("| 0.0 none |"),
        "{out}"
    );
    assert!(
        out.contains("CVE-2022-3602 in openssl: CVSS 75 (7.5 from CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H) × known exploitation 1.3 (in CISA KEV since 2026-11-30) × exposure 1 (reachable from the hospital network) × clinical impact 1.2 (delivers therapy: a compromise can injure) × compensating control 0.8 (on a filtering segment) × fix availability 1 (fixed in 3.0.7) = 93.6 critical"),
        "{out}"
    );
    assert!(
        out.contains("CVE-2022-28391 in busybox: VEX 0 (pkg:generic/acme/acme-ip200@1.2.0 says not_affected (vulnerable_code_not_in_execute_path)) = 0.0 none"),
        "{out}"
    );
    let e = stderr(&fails(
        medsec()
            .args(["risk", "match"])
            .arg(&v120)
            .arg("--advisories")
            .arg(&feed)
            .arg("--segmented"),
    ));
    assert!(e.contains("--clinical"), "{e}");
    // Release gate: the open high finding fails it; VEX took BusyBox's out. It is in CISA KEV,
    // so it fails a critical-only gate too.
    for level in ["high", "critical"] {
        let e = stderr(&fails(&mut run(&v120, &["--fail-on", level])));
        assert!(
            e.contains("CVE-2022-3602 (high, known exploited: CISA KEV) reaches --fail-on"),
            "{e}"
        );
    }
    // The fixed release is clean.
    let out = ok(&mut run(&v130, &["--fail-on", "low"]));
    assert!(
        out.contains("0 matched, 0 possible, 0 with undetermined findings, 2 clean, 0 incomplete, 1 unidentifiable"),
        "{out}"
    );
    // The same BusyBox in another product: ip200's VEX does not speak for it.
    let out = ok(&mut run(&other, &["--json"]));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let busybox = &json["components"][1];
    assert_eq!(busybox["status"], "matched");
    assert_eq!(busybox["findings"][0]["advisory"], "CVE-2022-28391");
    assert!(busybox["findings"][0]["vex"].is_null(), "{busybox}");
    assert!(stderr(&fails(&mut run(&other, &["--fail-on", "high"]))).contains("CVE-2022-28391"));

    // The release gate: the SBOM must be the one signed into the target; critical open
    // findings fail it, and VEX-resolved ones do not count.
    ok(medsec().args(["repo", "init"]).arg(s.repo()));
    let img = s.image("pump.img", &[7u8; 1000]);
    s.add_target(
        &img,
        "pump/pump-1.2.0.img",
        &["--sbom", v120.to_str().unwrap()],
    );
    s.add_target(&img, "pump/unsbomed.img", &[]);
    ok(medsec().args(["repo", "timestamp"]).arg(s.repo()));
    let check = |target: &str, sbom: &Path, extra: &[&str]| {
        let mut c = medsec();
        c.args(["release", "check"])
            .arg(s.repo())
            .arg(target)
            .arg("--sbom")
            .arg(sbom);
        c.arg("--advisories")
            .arg(&feed)
            .arg("--vex")
            .arg(&vex)
            .args(extra);
        c
    };
    // The open OpenSSL finding is high, and in CISA KEV: it fails the default (critical) gate,
    // as the compliance report names it a gap (risk::…; medsec_risk::gate is the one rule).
    let e = stderr(&fails(&mut check("pump/pump-1.2.0.img", &v120, &[])));
    assert!(
        e.contains("pump/pump-1.2.0.img has 1 open finding(s) at or above Critical, or known exploited, without a VEX statement resolving them: CVE-2022-3602 (high, known exploited: CISA KEV)"),
        "{e}"
    );
    // Without the KEV catalogue it is a high finding only: the default gate passes it, and
    // --fail-on high fails it.
    let no_kev = s.tmp.path().join("feed-no-kev");
    std::fs::create_dir_all(&no_kev).unwrap();
    for entry in std::fs::read_dir(&feed).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        if name != "kev.json" {
            let to = no_kev.join(&name);
            if path.is_dir() {
                std::fs::create_dir_all(&to).unwrap();
                for inner in std::fs::read_dir(&path).unwrap() {
                    let inner = inner.unwrap().path();
                    std::fs::copy(&inner, to.join(inner.file_name().unwrap())).unwrap();
                }
            } else {
                std::fs::copy(&path, &to).unwrap();
            }
        }
    }
    let check_no_kev = |extra: &[&str]| {
        let mut c = medsec();
        c.args(["release", "check"])
            .arg(s.repo())
            .arg("pump/pump-1.2.0.img")
            .arg("--sbom")
            .arg(&v120)
            .arg("--advisories")
            .arg(&no_kev)
            .arg("--vex")
            .arg(&vex)
            .args(extra);
        c
    };
    let out = ok(&mut check_no_kev(&[]));
    assert!(out.contains("is the one signed into the target"), "{out}");
    assert!(
        out.contains(
            "pump/pump-1.2.0.img: no open finding at or above Critical, and none known exploited"
        ),
        "{out}"
    );
    // An advisory file that cannot be read: the gate cannot say the release is clean.
    std::fs::write(no_kev.join("truncated.json"), "{\"id\": ").unwrap();
    let e = stderr(&fails(&mut check_no_kev(&[])));
    assert!(
        e.contains("1 of 3 advisory files could not be read, so no component can be called clean"),
        "{e}"
    );
    ok(&mut check_no_kev(&["--allow-incomplete"]));
    std::fs::remove_file(no_kev.join("truncated.json")).unwrap();
    let e = stderr(&fails(&mut check_no_kev(&["--fail-on", "high"])));
    assert!(
        e.contains("pump/pump-1.2.0.img has 1 open finding(s) at or above High, or known exploited, without a VEX statement resolving them: CVE-2022-3602 (high)"),
        "{e}"
    );
    let e = stderr(&fails(&mut check("pump/pump-1.2.0.img", &v130, &[])));
    assert!(
        e.contains("is not the SBOM signed into \"pump/pump-1.2.0.img\""),
        "{e}"
    );
    let e = stderr(&fails(&mut check("pump/unsbomed.img", &v120, &[])));
    assert!(
        e.contains("has no SBOM digest in its signed metadata"),
        "{e}"
    );
    let e = stderr(&fails(&mut check("pump/nothing.img", &v120, &[])));
    assert!(e.contains("is not a target of"), "{e}");
    // An edited targets.json (the digest swapped for v130's) breaks the signature.
    let targets = s.repo().join("metadata/targets.json");
    let text = std::fs::read_to_string(&targets).unwrap();
    let v130_digest = hex::encode(medsec_crypto::digest::sha256(
        &std::fs::read(&v130).unwrap(),
    ));
    let v120_digest = hex::encode(medsec_crypto::digest::sha256(
        &std::fs::read(&v120).unwrap(),
    ));
    std::fs::write(&targets, text.replace(&v120_digest, &v130_digest)).unwrap();
    let e = stderr(&fails(&mut check("pump/pump-1.2.0.img", &v130, &[])));
    assert!(e.contains("does not verify"), "{e}");

    // The VEX converted to CSAF and CycloneDX says the same.
    for (to, name) in [
        ("csaf", "ip200.csaf.json"),
        ("cyclonedx", "ip200.cdx-vex.json"),
    ] {
        let converted = ok(medsec()
            .args(["risk", "vex"])
            .arg(&vex)
            .args(["--to", to, "--author", "Acme PSIRT", "--id", "ACME-VEX-1"])
            .args(["--timestamp", "2026-12-01T00:00:00Z"]));
        let again = ok(medsec()
            .args(["risk", "vex"])
            .arg(&vex)
            .args(["--to", to, "--author", "Acme PSIRT", "--id", "ACME-VEX-1"])
            .args(["--timestamp", "2026-12-01T00:00:00Z"]));
        assert_eq!(converted, again, "the same input gives the same bytes");
        let file = s.image(name, converted.as_bytes());
        let mut c = medsec();
        c.args(["risk", "match"])
            .arg(&v120)
            .arg("--advisories")
            .arg(&feed)
            .arg("--vex")
            .arg(&file);
        let out = ok(&mut c);
        assert!(out.contains("1 open after VEX"), "{to}: {out}");
    }

    // Advisories in a zip archive read the same; a bad file is named and skipped, or
    // refuses the load with --strict; a zip entry over the size limit stops the load.
    std::fs::write(feed.join("broken.json"), "{\"id\": \"CVE-1\"}").unwrap();
    // Zips the feed with Python's zipfile; `bomb` adds a 3 MiB entry of spaces.
    let make_zip = |name: &str, bomb: bool| {
        let zip = s.tmp.path().join(name);
        let script = "import sys, zipfile, pathlib\n\
                      root = pathlib.Path(sys.argv[1])\n\
                      with zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED) as z:\n    \
                      [z.write(p, p.relative_to(root)) for p in sorted(root.rglob('*.json'))]\n    \
                      if len(sys.argv) > 3: z.writestr('huge.json', ' ' * (3 << 20))";
        let mut c = Command::new("python3");
        c.args(["-c", script]).arg(&feed).arg(&zip);
        if bomb {
            c.arg("bomb");
        }
        assert!(c.status().unwrap().success());
        zip
    };
    let zip = make_zip("feed.zip", false);
    let mut c = medsec();
    c.args(["risk", "match"])
        .arg(&v120)
        .arg("--advisories")
        .arg(&zip);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let (text, e) = (String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        text.contains("2 advisories from 4 files (1 unread, 0 read with warnings)"),
        "{text}"
    );
    assert!(
        e.contains("feed.zip:broken.json") && e.contains("neither OSV"),
        "{e}"
    );
    // With a file unread nothing is clean: the fixed release is incomplete, and --fail-on
    // fails on that unless --allow-incomplete accepts it.
    let incomplete = |extra: &[&str]| {
        let mut c = medsec();
        c.args(["risk", "match"])
            .arg(&v130)
            .arg("--advisories")
            .arg(&zip)
            .args(extra);
        c
    };
    let out = ok(&mut incomplete(&[]));
    assert!(
        out.contains("0 clean, 2 incomplete, 1 unidentifiable")
            && out.contains(
                "INCOMPLETE: 1 advisory files could not be read; no component is reported clean"
            ),
        "{out}"
    );
    let e = stderr(&fails(&mut incomplete(&["--fail-on", "critical"])));
    assert!(
        e.contains("1 of 4 advisory files could not be read, so no component can be called clean"),
        "{e}"
    );
    ok(&mut incomplete(&[
        "--fail-on",
        "critical",
        "--allow-incomplete",
    ]));
    let e = stderr(&fails(
        medsec()
            .args(["risk", "match"])
            .arg(&v120)
            .arg("--advisories")
            .arg(&zip)
            .arg("--strict"),
    ));
    assert!(
        e.contains("1 of 4 advisory files refused (--strict)"),
        "{e}"
    );
    let bomb = make_zip("bomb.zip", true);
    let e = stderr(&fails(
        medsec()
            .args(["risk", "match"])
            .arg(&v120)
            .arg("--advisories")
            .arg(&bomb)
            .args(["--max-file-bytes", "1048576"]),
    ));
    assert!(
        e.contains("bomb.zip:huge.json unpacks to over 1048576 bytes (--max-file-bytes)"),
        "{e}"
    );
}

/// `risk match` on real CISA advisories (CSAF, products named only by vendor and name)
/// against an inventory SBOM written as a hospital writes one: manufacturer, name, version.
#[test]
fn a_hospital_inventory_is_matched_by_name_against_real_cisa_advisories() {
    let s = Setup::new();
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../medsec-risk/tests/data/cisa-icsa");
    let feed = s.tmp.path().join("cisa");
    std::fs::create_dir_all(&feed).unwrap();
    for e in std::fs::read_dir(&fixtures).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            std::fs::copy(&p, feed.join(p.file_name().unwrap())).unwrap();
        }
    }
    let component = |i: usize, maker: &str, name: &str, version: &str| {
        serde_json::json!({"type": "device", "bom-ref": format!("c{i}"), "name": name,
            "version": version, "manufacturer": {"name": maker}})
    };
    let sbom = serde_json::json!({
        "bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
        "metadata": {"component": {"type": "device", "name": "ICU 3", "bom-ref": "icu3",
                                    "purl": "pkg:generic/hospital/icu3"}},
        "components": [
            component(0, "Delta Electronics, Inc.", "CNCSoft", "1.01.33"),
            component(1, "OMRON Corporation", "Sysmac Studio", "1.55"),
            component(2, "Delta Electronics, Inc.", "CNCSoft Builder", "1.01.33"),
            component(3, "Emerson", "GC370XA", "4.1.5"),
            {"type": "firmware", "bom-ref": "c4", "name": "bootloader", "version": "2"},
        ],
    });
    let file = s.image("icu3.cdx.json", sbom.to_string().as_bytes());
    // A VEX statement about this inventory for a CVE nothing in it has: reported, not silent.
    let vex = s.image(
        "icu3.openvex.json",
        serde_json::json!({
            "@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://hospital.example/vex/1",
            "author": "Biomed", "timestamp": "2026-12-01T00:00:00Z", "version": 1,
            "statements": [{"vulnerability": {"name": "CVE-2099-0001"},
                            "products": [{"@id": "pkg:generic/hospital/icu3"}],
                            "status": "not_affected",
                            "justification": "component_not_present"}]
        })
        .to_string()
        .as_bytes(),
    );
    let run = |extra: &[&str]| {
        let mut c = medsec();
        c.args(["risk", "match"])
            .arg(&file)
            .arg("--advisories")
            .arg(&feed)
            .arg("--vex")
            .arg(&vex)
            .args(extra);
        c
    };
    let out = run(&["--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The one file that breaks CSAF test 6.1.31 is read, with its warning on stderr.
    assert!(
        stderr(&out).contains("icsa-23-026-07.json: mandatory test 6.1.31"),
        "{}",
        stderr(&out)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let summary = &json["summary"];
    assert_eq!(
        [
            &summary["matched"],
            &summary["possible"],
            &summary["clean"],
            &summary["unidentifiable"],
            &summary["incomplete"]
        ],
        [2, 1, 1, 1, 0],
        "{summary}"
    );
    assert_eq!(json["advisories"]["warnings"].as_array().unwrap().len(), 1);
    assert_eq!(summary["vex_unapplied"], 1, "{summary}");
    assert_eq!(
        json["vex_unapplied"][0]["why"],
        "no finding of this SBOM is about CVE-2099-0001"
    );
    let delta = &json["components"][0]["findings"][0];
    assert_eq!(delta["advisory"], "CVE-2022-4634", "{delta}");
    assert_eq!(delta["matched_by"], "name");
    assert_eq!(
        delta["compared"]["component"],
        "Delta Electronics, Inc. / CNCSoft"
    );
    assert_eq!(delta["compared"]["advisory"], "Delta Electronics / CNCSoft");
    assert_eq!(json["components"][2]["status"], "possible");
    assert_eq!(json["components"][1]["compared_on"][0]["on"], "name");
    // The table says the same; the critical Emerson finding fails the default gate level.
    let out = ok(&mut run(&[]));
    assert!(
        out.contains("| CNCSoft | 1.01.33 | matched | CVE-2022-4634 | name (high: \"Delta Electronics, Inc. / CNCSoft\" ~ \"Delta Electronics / CNCSoft\") |"),
        "{out}"
    );
    assert!(
        out.contains("| CNCSoft Builder | 1.01.33 | possible | CVE-2022-4634 |"),
        "{out}"
    );
    let e = stderr(&fails(&mut run(&["--fail-on", "critical"])));
    assert!(
        e.contains("CVE-2023-46687 (critical) reaches --fail-on"),
        "{e}"
    );
    // --strict reads as before: the 6.1.31 file refuses the load.
    let e = stderr(&fails(&mut run(&["--strict"])));
    assert!(
        e.contains("1 of 15 advisory files refused (--strict)") && e.contains("6.1.31"),
        "{e}"
    );
    // An unreadable file: the fixed Omron version is incomplete, not clean, and the gate fails
    // on that, whatever the findings, unless --allow-incomplete.
    std::fs::write(feed.join("truncated.json"), "{\"document\": ").unwrap();
    let out = run(&["--json"]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["components"][1]["status"], "incomplete", "{json}");
    assert_eq!(json["summary"]["unread_advisory_files"], 1);
    assert!(
        json["advisories"]["unread"][0]["file"]
            .as_str()
            .unwrap()
            .ends_with("truncated.json"),
        "{json}"
    );
    let e = stderr(&fails(&mut run(&["--fail-on", "any"])));
    assert!(
        e.contains("1 of 16 advisory files could not be read, so no component can be called clean"),
        "{e}"
    );
    let e = stderr(&fails(&mut run(&[
        "--fail-on",
        "any",
        "--allow-incomplete",
    ])));
    assert!(e.contains("reaches --fail-on Any"), "{e}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn wrong_passphrase_and_missing_passphrase_are_clear_errors() {
    let s = Setup::new();
    ok(medsec().args(["repo", "init"]).arg(s.repo()));
    let img = s.image("a.img", b"a");
    let out = fails(
        medsec()
            .env("MEDSEC_PASSPHRASE", "wrong")
            .args(["repo", "add-target"])
            .arg(s.repo())
            .arg(&img)
            .args([
                "--hardware-id",
                "x",
                "--version",
                "1.0.0",
                "--release-counter",
                "1",
            ]),
    );
    assert!(
        stderr(&out).contains("wrong passphrase for key"),
        "{}",
        stderr(&out)
    );
    let out = fails(
        medsec()
            .env_remove("MEDSEC_PASSPHRASE")
            .args(["repo", "init"])
            .arg(s.path("repo2")),
    );
    assert!(
        stderr(&out).contains("--plaintext-keys"),
        "{}",
        stderr(&out)
    );
    let out = fails(
        medsec()
            .args(["repo", "add-target"])
            .arg(s.repo())
            .arg(&img)
            .args([
                "--hardware-id",
                "x",
                "--version",
                "1.0",
                "--release-counter",
                "1",
            ]),
    );
    assert!(
        stderr(&out).contains("not a semantic version"),
        "{}",
        stderr(&out)
    );
    let out = fails(medsec().args(["repo", "verify"]).arg(s.path("nowhere")));
    assert!(
        stderr(&out).contains("is not a medsec repository"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn threshold_signing_by_several_key_holders() {
    let s = Setup::new();
    ok(medsec().args(["repo", "init"]).arg(s.repo()).args([
        "--targets-keys",
        "2",
        "--targets-threshold",
        "2",
        "--plaintext-keys",
    ]));
    let keys = s.repo().join("keys");
    let img = s.image("a.img", b"firmware");
    s.add_target(
        &img,
        "a.img",
        &["--key", keys.join("targets-1.key").to_str().unwrap()],
    );
    let status = ok(medsec().args(["repo", "status"]).arg(s.repo()));
    assert!(
        status.contains("signatures 1/2  (below threshold)"),
        "{status}"
    );
    let out = fails(medsec().args(["repo", "timestamp"]).arg(s.repo()));
    assert!(stderr(&out).contains("threshold is 2"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("medsec repo sign --role targets"),
        "{}",
        stderr(&out)
    );
    // The same key cannot sign twice.
    let out = fails(
        medsec()
            .args(["repo", "sign"])
            .arg(s.repo())
            .args(["--role", "targets", "--key"])
            .arg(keys.join("targets-1.key")),
    );
    assert!(stderr(&out).contains("already signed"), "{}", stderr(&out));
    // A key of another role may not sign.
    let out = fails(
        medsec()
            .args(["repo", "sign"])
            .arg(s.repo())
            .args(["--role", "targets", "--key"])
            .arg(keys.join("snapshot-1.key")),
    );
    assert!(stderr(&out).contains("may not sign"), "{}", stderr(&out));
    let out = ok(medsec()
        .args(["repo", "sign"])
        .arg(s.repo())
        .args(["--role", "targets", "--key"])
        .arg(keys.join("targets-2.key")));
    assert!(out.contains("threshold met"), "{out}");
    ok(medsec().args(["repo", "timestamp"]).arg(s.repo()));
    let www = s.publish();
    s.client_init("dev");
    ok(&mut s.client(&www, &["a.img"], "dev"));
}

#[test]
fn root_rotation_and_hash_bins_reach_the_client() {
    let s = Setup::new();
    ok(medsec().args(["repo", "init"]).arg(s.repo()).args([
        "--root-scheme",
        "ed25519",
        "--plaintext-keys",
    ]));
    s.client_init("dev");
    let new_root = s.path("new-root.key");
    ok(medsec()
        .args(["repo", "keygen"])
        .arg(&new_root)
        .args(["--plaintext-keys"]));
    let out = ok(medsec()
        .args(["repo", "rotate"])
        .arg(s.repo())
        .args(["--role", "root", "--threshold", "2", "--add-key"])
        .arg(&new_root));
    assert!(out.contains("root v2 written"), "{out}");
    // The new root (threshold 2) is signed by root-1 only: verify says so precisely.
    let out = fails(medsec().args(["repo", "verify"]).arg(s.repo()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("PROBLEM  2.root.json"), "{text}");
    ok(medsec()
        .args(["repo", "sign"])
        .arg(s.repo())
        .args(["--role", "root", "--key"])
        .arg(&new_root));
    ok(medsec()
        .args(["repo", "delegate"])
        .arg(s.repo())
        .args(["--hash-bins", "4"]));
    let img = s.image("b.img", b"binned firmware");
    let out = s.add_target(&img, "fw/b.img", &[]);
    assert!(out.contains("to role bins-"), "{out}");
    ok(medsec().args(["repo", "timestamp"]).arg(s.repo()));
    ok(medsec().args(["repo", "verify"]).arg(s.repo()));
    let www = s.publish();
    ok(&mut s.client(&www, &["fw/b.img"], "dev"));
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.path("dev/metadata/root.json")).unwrap()).unwrap();
    assert_eq!(root["signed"]["version"], 2);
}

#[test]
fn verify_finds_tampered_artifacts_and_expired_metadata() {
    let s = Setup::new();
    ok(medsec()
        .args(["repo", "init"])
        .arg(s.repo())
        .arg("--plaintext-keys"));
    let img = s.image("a.img", b"genuine");
    s.add_target(&img, "a.img", &[]);
    ok(medsec()
        .args(["repo", "timestamp"])
        .arg(s.repo())
        .args(["--expires", "1s"]));
    std::fs::write(s.repo().join("targets/a.img"), b"tampered").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = fails(medsec().args(["repo", "verify"]).arg(s.repo()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("PROBLEM  timestamp: timestamp metadata expired"),
        "{text}"
    );
    ok(medsec().args(["repo", "timestamp"]).arg(s.repo()));
    let out = fails(medsec().args(["repo", "verify"]).arg(s.repo()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("PROBLEM  target \"a.img\""), "{text}");
    let out = fails(
        medsec()
            .args(["repo", "publish"])
            .arg(s.repo())
            .arg("--out")
            .arg(s.path("www")),
    );
    assert!(
        stderr(&out).contains("nothing was published"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_fleet_demo_halts_the_broken_build_and_completes_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(medsec()
        .env_remove("MEDSEC_PASSPHRASE")
        .args(["demo", "--devices", "12", "--dir"])
        .arg(dir.path()));
    assert!(out.contains("fw-1.1: halted — wave 0 failed"), "{out}");
    assert!(out.contains("fw-1.2: completed"), "{out}");
    assert!(out.contains("12 device(s) run 1.2.0"), "{out}");
    assert!(out.contains("verified intact"), "{out}");
    // The kept directory is a working server data directory for the CLI.
    let status = ok(medsec()
        .args(["campaign", "status", "fw-1.1", "--config"])
        .arg(dir.path().join("medsec.toml")));
    assert!(status.contains("halted"), "{status}");
    // The attack: explained alerts on the pump and the monitor, the pump quarantined.
    assert!(
        out.contains("destination-not-allowed on pump-000: T0882")
            && out.contains("remote observed 203.0.113.77"),
        "{out}"
    );
    assert!(out.contains("clinical-implausible on monitor-"), "{out}");
    // The pump's three flows to one destination are one alert with a count, not three.
    assert_eq!(
        out.matches("destination-not-allowed on pump-000").count(),
        1,
        "{out}"
    );
    assert!(out.contains("(seen 3 times)"), "{out}");
    assert!(out.contains("pump quarantined"), "{out}");
    assert!(out.contains("early warning due in 24 h"), "{out}");
    // And Investigator shows it afterwards from the kept directory.
    let timeline = ok(medsec()
        .args([
            "investigate",
            "pump-000",
            "--kind",
            "alert,incident",
            "--config",
        ])
        .arg(dir.path().join("medsec.toml")));
    assert!(timeline.contains("quarantine by"), "{timeline}");
}

#[test]
fn demo_runs_end_to_end() {
    let out = ok(medsec().env_remove("MEDSEC_PASSPHRASE").args([
        "demo",
        "--tuf-tour",
        "--image-mib",
        "1",
    ]));
    assert!(out.contains("refused:"), "{out}");
    assert!(out.contains("has the wrong sha256 hash"), "{out}");
}

// --- python-tuf interop -------------------------------------------------------------------------

/// The Python with python-tuf 7: `MEDSEC_PYTHON`, else the workspace's `.venv`. In CI its absence
/// fails the test; elsewhere the test says it skipped.
fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("MEDSEC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"));
    let works = Command::new(&candidate)
        .args(["-c", "import tuf, securesystemslib.signer"])
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Some(candidate);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "python-tuf is required in CI: run scripts/test.sh, which creates .venv"
    );
    eprintln!(
        "SKIPPED: python-tuf interop (no python with tuf at {}; run scripts/test.sh)",
        candidate.display()
    );
    None
}

struct Server(Child, u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(python: &Path, dir: &Path) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Server(
        Command::new(python)
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
        port,
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = server.0.kill();
    panic!("python http.server did not start on port {port}");
}

fn interop_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

#[test]
fn python_tuf_client_reads_a_medsec_repository() {
    let Some(py) = python() else { return };
    let s = Setup::new();
    ok(medsec().args(["repo", "init"]).arg(s.repo()).args([
        "--root-scheme",
        "ed25519",
        "--targets-scheme",
        "ed25519",
        "--online-scheme",
        "ed25519",
    ]));
    ok(medsec().args(["repo", "delegate"]).arg(s.repo()).args([
        "--name",
        "monitors",
        "--path",
        "monitor/*",
        "--scheme",
        "ecdsa",
    ]));
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let img = s.image("m.img", &data);
    s.add_target(&img, "monitor/m-1.2.0.img", &["--role", "monitors"]);
    let img2 = s.image("p.img", b"pump");
    s.add_target(&img2, "pump.img", &[]);
    ok(medsec().args(["repo", "timestamp"]).arg(s.repo()));
    let www = s.publish();
    let server = serve(&py, &www);
    let base = format!("http://127.0.0.1:{}", server.1);
    let out = ok(Command::new(&py)
        .arg(interop_script("python_tuf_client.py"))
        .arg(s.repo().join("metadata/1.root.json"))
        .arg(format!("{base}/metadata/"))
        .arg(format!("{base}/targets/"))
        .arg("monitor/m-1.2.0.img")
        .arg(s.path("py")));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        v["sha256"],
        hex::encode(medsec_crypto::digest::sha256(&data))
    );
    assert_eq!(v["custom"]["medsec"]["version"], "1.2.0");
    // And medsec's own client over HTTP against the same server.
    s.client_init("dev");
    ok(tuf_client()
        .arg("--metadata-dir")
        .arg(s.path("dev/metadata"))
        .args(["--metadata-url", &format!("{base}/metadata/")])
        .args([
            "--target-name",
            "monitor/m-1.2.0.img",
            "--target-name",
            "pump.img",
        ])
        .arg("--target-dir")
        .arg(s.path("py"))
        .args(["--target-base-url", &format!("{base}/targets/"), "download"]));
}

#[test]
fn medsec_client_reads_a_python_tuf_repository() {
    let Some(py) = python() else { return };
    let s = Setup::new();
    let repo = s.path("pyrepo");
    let out = ok(Command::new(&py)
        .arg(interop_script("python_tuf_repo.py"))
        .arg(&repo));
    let digests: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let server = serve(&py, &repo);
    let base = format!("http://127.0.0.1:{}", server.1);
    ok(tuf_client()
        .arg("--metadata-dir")
        .arg(s.path("dev/metadata"))
        .arg("init")
        .arg(repo.join("metadata/1.root.json")));
    let td = s.path("dev/targets");
    std::fs::create_dir_all(&td).unwrap();
    ok(tuf_client()
        .arg("--metadata-dir")
        .arg(s.path("dev/metadata"))
        .args(["--metadata-url", &format!("{base}/metadata/")])
        .args([
            "--target-name",
            "readme.txt",
            "--target-name",
            "firmware/monitor-2.0.0.img",
        ])
        .arg("--target-dir")
        .arg(&td)
        .args(["--target-base-url", &format!("{base}/targets/"), "download"]));
    let got = std::fs::read(td.join("firmware%2Fmonitor-2.0.0.img")).unwrap();
    assert_eq!(
        digests["firmware/monitor-2.0.0.img"],
        hex::encode(medsec_crypto::digest::sha256(&got))
    );
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.path("dev/metadata/root.json")).unwrap()).unwrap();
    assert_eq!(
        root["signed"]["version"], 2,
        "followed python-tuf's root rotation"
    );
}

// --- fleet CA -----------------------------------------------------------------------------------

#[test]
fn fleet_ca_issues_lists_revokes_and_publishes_crls() {
    let s = Setup::new();
    let ca = s.path("ca");
    ok(medsec()
        .args(["ca", "init"])
        .arg(&ca)
        .args(["--name", "Acme Fleet"]));
    assert!(
        std::fs::read_to_string(ca.join("issuing.key"))
            .unwrap()
            .contains("ENCRYPTED")
    );
    let (key, csr) = (s.path("dev.key"), s.path("dev.csr"));
    let Ok(out) = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", "/CN=anything"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .output()
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "openssl is required in CI"
        );
        eprintln!("SKIPPED: openssl is not installed");
        return;
    };
    assert!(out.status.success());
    let cert = s.path("dev.crt");
    ok(medsec()
        .args(["ca", "issue"])
        .arg(&ca)
        .arg("--csr")
        .arg(&csr)
        .args(["--device", "pump-0042", "--days", "30", "--out"])
        .arg(&cert));
    let verify = |crl: Option<&Path>| {
        let mut c = Command::new("openssl");
        c.arg("verify").arg("-CAfile").arg(ca.join("chain.pem"));
        if let Some(crl) = crl {
            c.arg("-crl_check").arg("-CRLfile").arg(crl);
        }
        c.arg(&cert).output().unwrap()
    };
    assert!(verify(None).status.success());
    let list = ok(medsec().args(["ca", "list"]).arg(&ca));
    assert!(
        list.contains("pump-0042") && list.contains("valid"),
        "{list}"
    );
    let serial = list.split_whitespace().next().unwrap().to_owned();
    let out = fails(medsec().args(["ca", "revoke"]).arg(&ca).args([
        "--serial",
        "00ab",
        "--reason",
        "key-compromise",
    ]));
    assert!(
        stderr(&out).contains("no certificate with serial"),
        "{}",
        stderr(&out)
    );
    ok(medsec().args(["ca", "revoke"]).arg(&ca).args([
        "--serial",
        &serial,
        "--reason",
        "key-compromise",
    ]));
    let crl = s.path("crl.pem");
    ok(medsec().args(["ca", "crl"]).arg(&ca).arg("--out").arg(&crl));
    assert!(
        !verify(Some(&crl)).status.success(),
        "revoked certificate still verifies"
    );
    let list = ok(medsec().args(["ca", "list"]).arg(&ca));
    assert!(list.contains("REVOKED"), "{list}");
    let out = fails(
        medsec()
            .args(["ca", "issue"])
            .arg(&ca)
            .arg("--csr")
            .arg(&csr)
            .args(["--device", "../etc"]),
    );
    assert!(stderr(&out).contains("is not allowed"), "{}", stderr(&out));
    let out = fails(
        medsec()
            .env("MEDSEC_PASSPHRASE", "wrong")
            .args(["ca", "list"])
            .arg(&ca),
    );
    assert!(
        stderr(&out).contains("wrong passphrase"),
        "{}",
        stderr(&out)
    );
}
