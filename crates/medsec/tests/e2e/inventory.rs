//! The inventory through the operator API and the command line.

use serde_json::Value;

use medsec_testkit::*;

#[test]
fn inventory_is_kept_through_the_operator_api_and_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[], &[]);
    let admin = s.operator_token("alice", "admin", "1h");
    let enroller = s.operator_token("erin", "enroller", "1h");
    let viewer = s.operator_token("victor", "viewer", "1h");
    let bearer = |t: &str| format!("Authorization: Bearer {t}");
    let json = |r: &Reply| -> Value { serde_json::from_str(&r.body).unwrap() };
    let post_token = |token: &str, body: &str| {
        s.curl(&[
            "-H",
            &bearer(token),
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
            &s.operator_url("/api/v1/enrolment-tokens"),
        ])
    };
    let patch = |token: &str, id: &str, body: &str| {
        s.curl(&[
            "-X",
            "PATCH",
            "-H",
            &bearer(token),
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
            &s.operator_url(&format!("/api/v1/devices/{id}")),
        ])
    };
    let list = |query: &str| -> Vec<String> {
        let r = s.curl(&[
            "-H",
            &bearer(&viewer),
            &s.operator_url(&format!("/api/v1/devices?{query}")),
        ]);
        assert_eq!(r.status, 200, "{r:?}");
        json(&r)
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };

    // Registration with inventory, over the API (an enroller) and on the command line.
    for (id, model, site, groups) in [
        ("pump-n1", "infusion-pump", "north", r#"["icu","canary"]"#),
        ("pump-s1", "infusion-pump", "south", r#"["icu"]"#),
    ] {
        let body = format!(
            r#"{{"device":"{id}","model":"{model}","hardware_id":"acme-pump-r2","site":"{site}","groups":{groups}}}"#
        );
        let r = post_token(&enroller, &body);
        assert_eq!(r.status, 201, "{r:?}");
    }
    ok(medsec()
        .args(["fleet", "token", "create", "--device", "mon-n1"])
        .args(["--model", "patient-monitor", "--hardware-id", "acme-mon-r1"])
        .args(["--site", "north", "--group", "ward-3"])
        .args(s.location()));
    let mon = s.curl(&[
        "-H",
        &bearer(&viewer),
        &s.operator_url("/api/v1/devices/mon-n1"),
    ]);
    let mon = json(&mon);
    assert_eq!(
        (
            &mon["model"],
            &mon["hardware_id"],
            &mon["site"],
            &mon["groups"]
        ),
        (
            &Value::from("patient-monitor"),
            &Value::from("acme-mon-r1"),
            &Value::from("north"),
            &serde_json::json!(["ward-3"])
        )
    );

    // Filters combine.
    assert_eq!(list("model=infusion-pump"), ["pump-n1", "pump-s1"]);
    assert_eq!(list("site=north"), ["mon-n1", "pump-n1"]);
    assert_eq!(list("group=icu&site=south"), ["pump-s1"]);
    assert_eq!(list("group=canary"), ["pump-n1"]);
    assert!(list("model=infusion-pump&group=ward-3").is_empty());
    let r = s.curl(&[
        "-H",
        &bearer(&viewer),
        &s.operator_url("/api/v1/devices?colour=red"),
    ]);
    assert_eq!(
        r.status, 400,
        "an unknown filter is refused, not ignored: {r:?}"
    );

    // A patch changes only the fields it names.
    let r = patch(&enroller, "pump-s1", r#"{"site":"north","groups":[]}"#);
    assert_eq!(r.status, 200, "{r:?}");
    let d = json(&r);
    assert_eq!(
        (&d["model"], &d["hardware_id"], &d["site"], &d["groups"]),
        (
            &Value::from("infusion-pump"),
            &Value::from("acme-pump-r2"),
            &Value::from("north"),
            &serde_json::json!([])
        )
    );
    assert_eq!(list("site=north"), ["mon-n1", "pump-n1", "pump-s1"]);
    assert_eq!(list("group=icu"), ["pump-n1"]);

    // Refusals: bad values (named, nothing stored), unknown fields, unknown devices, a viewer.
    let r = patch(&admin, "pump-n1", r#"{"site":"a\nb"}"#);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("control character"), "{r:?}");
    let r = patch(&admin, "pump-n1", r#"{"colour":"red"}"#);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("colour"), "{r:?}");
    let r = post_token(&admin, r#"{"device":"pump-x","groups":[""]}"#);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("group \\\"\\\" is empty"), "{r:?}");
    assert_eq!(
        s.curl(&[
            "-H",
            &bearer(&viewer),
            &s.operator_url("/api/v1/devices/pump-x")
        ])
        .status,
        404,
        "a refused registration stores nothing"
    );
    assert_eq!(patch(&admin, "ghost", r#"{"site":"x"}"#).status, 404);
    assert_eq!(patch(&viewer, "pump-n1", r#"{"site":"x"}"#).status, 403);
    assert_eq!(list("site=x").len(), 0);
    // A device cannot change its own inventory: the action does not apply to devices.
    let out = medsec()
        .args([
            "policy",
            "check",
            "--device",
            "pump-n1",
            "--action",
            "device.update",
        ])
        .args(["--resource", "device:pump-n1"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.starts_with("DENY"), "{said}");

    // The command line sees and changes the same inventory.
    let table = ok(medsec()
        .args(["fleet", "device", "list", "--group", "canary"])
        .args(s.location()));
    assert!(
        table.contains("pump-n1") && !table.contains("pump-s1"),
        "{table}"
    );
    ok(medsec()
        .args(["fleet", "device", "update", "pump-n1", "--no-groups"])
        .args(s.location()));
    assert!(list("group=canary").is_empty());
    let out = medsec()
        .args(["fleet", "device", "update", "ghost", "--site", "x"])
        .args(s.location())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no device \"ghost\""));

    // Every change is in the audit log with what changed and who changed it.
    let e = s.audited(&admin, "the API patch", |e| {
        field(e, "action") == "device.update" && has(e, "detail", "site=\"north\"")
    });
    assert!(field(&e["event"], "principal").contains("erin"), "{e}");
    s.audited(&admin, "the CLI patch", |e| {
        field(e, "action") == "device.update" && has(e, "detail", "groups=[]")
    });
    s.audited(&admin, "the viewer's refusal", |e| {
        field(e, "action") == "device.update"
            && field(e, "decision") == "deny"
            && field(e, "principal").contains("victor")
    });
    s.audited(&admin, "inventory given with a token", |e| {
        field(e, "action") == "token.create" && has(e, "detail", "hardware_id=\"acme-pump-r2\"")
    });
}
