//! Logging in to a broker that requires it, against a real mosquitto with
//! `allow_anonymous false`, a password file and an ACL; and a broker that
//! accepts TCP but never answers CONNECT.

use crate::common::*;
use std::process::Command;
use std::time::Duration;

const PASSWORD: &str = "correct-horse-battery";

/// Password file (users `stylecam` and `reader`) and ACL: `stylecam` may
/// write only under `stylecam/{device}/`, `reader` reads everything.
fn write_auth(dir: &std::path::Path, device: &str) {
    let passwd = dir.join("passwd");
    for (i, (user, pass)) in [("stylecam", PASSWORD), ("reader", "reader-pass")]
        .iter()
        .enumerate()
    {
        let mut cmd = Command::new("mosquitto_passwd");
        if i == 0 {
            cmd.arg("-c");
        }
        let ok = cmd
            .arg("-b")
            .arg(&passwd)
            .args([user, pass])
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
    }
    let acl =
        format!("user stylecam\ntopic write stylecam/{device}/#\n\nuser reader\ntopic read #\n");
    std::fs::write(dir.join("acl"), acl).unwrap();
}

const AUTH: &str = "allow_anonymous false\npassword_file {dir}/passwd\nacl_file {dir}/acl\n";

fn secured_broker() -> Mosquitto {
    Mosquitto::start_with(free_port(), AUTH, |dir| write_auth(dir, "it-auth"))
}

#[test]
fn wrong_password_is_a_clear_error_and_the_right_one_delivers_under_the_acl() {
    if !available(
        "mosquitto and mosquitto_passwd",
        mosquitto_path().is_some() && Command::new("mosquitto_passwd").arg("-h").output().is_ok(),
    ) {
        return;
    }
    let broker = secured_broker();
    let dir = tempfile::tempdir().unwrap();
    let cfg = daemon_config(dir.path(), &photos(dir.path()), broker.port, "it-auth", "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[mqtt]\n", "[mqtt]\nusername = \"stylecam\"\n");
    std::fs::write(&cfg, text).unwrap();
    let reader = Collector::start_as(
        broker.port,
        "#",
        "it-reader",
        Some(("reader", "reader-pass")),
    );

    // Wrong password: refused, retried, explained; the password is never logged.
    let mut daemon = run_daemon(&cfg, &[("STYLECAM_MQTT__PASSWORD", "wrong-password")]);
    wait_log(
        &daemon,
        "refused the connection",
        1,
        Duration::from_secs(30),
    );
    eprintln!(
        "{}",
        daemon
            .log_text()
            .lines()
            .find(|l| l.contains("refused"))
            .unwrap()
    );
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon keeps running and retrying"
    );
    assert!(!daemon.log_text().contains("wrong-password"));
    daemon.signal("TERM");
    daemon.wait(Duration::from_secs(20));
    assert!(kind(&reader.all(), "styles").is_empty());

    // Right password from a file: events arrive, all under the allowed prefix.
    std::fs::write(dir.path().join("password"), format!("{PASSWORD}\n")).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[mqtt]\n",
        &format!(
            "[mqtt]\npassword_file = \"{}\"\n",
            dir.path().join("password").display()
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    let mut daemon = run_daemon(&cfg, &[]);
    let all = reader.wait_for(
        "events with the right password",
        Duration::from_secs(60),
        |all| kind(all, "styles").len() >= 2,
    );
    assert!(
        all.iter().all(|r| r.topic.starts_with("stylecam/it-auth/")),
        "{:?}",
        all.iter().map(|r| &r.topic).collect::<Vec<_>>()
    );
    assert!(!daemon.log_text().contains(PASSWORD));
    daemon.signal("TERM");
    assert!(
        daemon.wait(Duration::from_secs(20)).success(),
        "{}",
        daemon.log_text()
    );
}

#[test]
fn a_broker_that_never_answers_connect_is_detected_by_timeout() {
    // Accepts TCP connections and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = vec![];
        for s in listener.incoming().map_while(Result::ok) {
            held.push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = daemon_config(dir.path(), &photos(dir.path()), port, "it-silent", "");
    let mut daemon = run_daemon(&cfg, &[]);
    wait_log(&daemon, "no answer to CONNECT", 1, Duration::from_secs(30));
    assert!(daemon.child.try_wait().unwrap().is_none());
    daemon.signal("TERM");
    daemon.wait(Duration::from_secs(20));
}

/// Runs openssl with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &str) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args.split_whitespace())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate.
fn make_certs(dir: &std::path::Path, ca: &str) {
    let key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    openssl(
        dir,
        &format!(
            "req -x509 {key} -keyout {ca}.key -out {ca}.pem -days 2 -subj /CN=stylecam-test-{ca}"
        ),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for who in ["server", "client"] {
        openssl(
            dir,
            &format!("req {key} -keyout {who}.key -out {who}.csr -subj /CN=stylecam-{who}"),
        );
        openssl(
            dir,
            &format!("x509 -req -in {who}.csr -CA {ca}.pem -CAkey {ca}.key -CAcreateserial -out {who}.pem -days 2 -extfile {who}.ext"),
        );
    }
}

#[test]
fn tls_with_password_ca_file_and_client_certificate_delivers_and_a_wrong_ca_is_explained() {
    if !available(
        "mosquitto and openssl",
        mosquitto_path().is_some() && Command::new("openssl").arg("version").output().is_ok(),
    ) {
        return;
    }
    let tls_port = free_port();
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path(), "ca");
    let c = certs.path().display().to_string();
    // A plain listener for the test's subscriber, a TLS one (client
    // certificate required) for the daemon.
    let broker = Mosquitto::start_with(
        free_port(),
        &format!(
            "{AUTH}listener {tls_port} 127.0.0.1\ncafile {c}/ca.pem\ncertfile {c}/server.pem\nkeyfile {c}/server.key\nrequire_certificate true\n"
        ),
        |dir| write_auth(dir, "it-tls"),
    );
    assert!(wait_for_port(tls_port, Duration::from_secs(10)));
    let dir = tempfile::tempdir().unwrap();
    let cfg = daemon_config(dir.path(), &photos(dir.path()), tls_port, "it-tls", "");
    let base = std::fs::read_to_string(&cfg).unwrap();
    let with_tls = |ca: &str| {
        base.replace(
            "[mqtt]\n",
            &format!("[mqtt]\nusername = \"stylecam\"\ntls = true\nca_file = \"{c}/{ca}\"\nclient_cert_file = \"{c}/client.pem\"\nclient_key_file = \"{c}/client.key\"\n"),
        )
    };
    let sub = Collector::start_as(
        broker.port,
        "#",
        "it-sub-tls",
        Some(("reader", "reader-pass")),
    );

    // Trusting another CA: the handshake fails with an explanation, and retries.
    let other = tempfile::tempdir().unwrap();
    make_certs(other.path(), "other");
    std::fs::copy(
        other.path().join("other.pem"),
        certs.path().join("other.pem"),
    )
    .unwrap();
    std::fs::write(&cfg, with_tls("other.pem")).unwrap();
    let mut daemon = run_daemon(&cfg, &[("STYLECAM_MQTT__PASSWORD", PASSWORD)]);
    wait_log(&daemon, "TLS failed", 1, Duration::from_secs(30));
    let log = daemon.log_text();
    eprintln!(
        "{}",
        log.lines().find(|l| l.contains("TLS failed")).unwrap()
    );
    assert!(daemon.child.try_wait().unwrap().is_none());
    daemon.signal("TERM");
    daemon.wait(Duration::from_secs(20));

    // The right CA and a client certificate: events arrive.
    std::fs::write(&cfg, with_tls("ca.pem")).unwrap();
    let mut daemon = run_daemon(&cfg, &[("STYLECAM_MQTT__PASSWORD", PASSWORD)]);
    let all = sub.wait_for("events over TLS", Duration::from_secs(60), |all| {
        kind(all, "styles").len() >= 2
    });
    assert!(all.iter().all(|r| r.topic.starts_with("stylecam/it-tls/")));
    assert!(!daemon.log_text().contains(PASSWORD));
    daemon.signal("TERM");
    assert!(
        daemon.wait(Duration::from_secs(20)).success(),
        "{}",
        daemon.log_text()
    );
}
