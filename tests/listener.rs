//! The HTTP listener tried the way an attacker or an unlucky store network
//! would: a flood of idle connections past the daemon's open-file limit,
//! foreign `Host` headers (DNS rebinding), wrong tokens, a rotated token,
//! and a config error quoting a secret.

use crate::common::*;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::{Duration, Instant};

/// One raw request to `ip:port`: (status, head, body).
fn request(ip: IpAddr, port: u16, raw: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect((ip, port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_string(), body.to_string())
}

fn get(ip: IpAddr, port: u16, path: &str, extra: &str) -> (u16, String, String) {
    request(
        ip,
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\n{extra}\r\n"),
    )
}

fn set_nofile(soft: u64, hard: u64) -> std::io::Result<()> {
    let l = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn with_listen(cfg: &std::path::Path, section: &str) {
    let mut text = std::fs::read_to_string(cfg).unwrap();
    text.push_str(section);
    std::fs::write(cfg, text).unwrap();
}

#[test]
fn a_flood_of_idle_connections_past_the_file_limit_stops_neither_tags_nor_healthz() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let broker = Mosquitto::start(free_port());
    let dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let cfg = daemon_config(dir.path(), &photos(dir.path()), broker.port, "it-flood", "");
    with_listen(
        &cfg,
        &format!("\n[metrics]\nlisten = \"127.0.0.1:{http_port}\"\n"),
    );
    let sub = Collector::start(broker.port, "stylecam/it-flood/#", "it-flood-sub");
    // systemd's default soft limit, with no room to raise it.
    let mut cmd = stylecam();
    cmd.args(["run", "--config"]).arg(&cfg);
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(|| set_nofile(1024, 1024));
    }
    let mut daemon = Daemon::spawn(cmd);
    assert!(
        wait_for_port(http_port, Duration::from_secs(60)),
        "{}",
        daemon.log_text()
    );
    sub.wait_for("the first tag events", Duration::from_secs(60), |all| {
        kind(all, "styles").len() >= 2
    });

    // 1,100 connections that never send a byte, held open.
    let mut ours = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut ours) };
    if ours.rlim_cur < 4096 {
        set_nofile(4096.min(ours.rlim_max), ours.rlim_max).unwrap();
    }
    let local = IpAddr::from([127, 0, 0, 1]);
    let held: Vec<TcpStream> = (0..1100)
        .map(|i| {
            TcpStream::connect((local, http_port)).unwrap_or_else(|e| panic!("connection {i}: {e}"))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    if let Some(status) = daemon.child.try_wait().unwrap() {
        let log = daemon.log_text();
        let tail: Vec<&str> = log.lines().rev().take(8).collect();
        panic!(
            "the daemon exited ({status}) under 1,100 idle connections; its last lines:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }

    // /healthz answers through it, every time.
    let events_before = kind(&sub.all(), "styles").len();
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let t = Instant::now();
        let (code, _, body) = get(local, http_port, "/healthz", "");
        slowest = slowest.max(t.elapsed());
        assert_eq!(code, 200, "{body}\n{}", daemon.log_text());
        std::thread::sleep(Duration::from_millis(300));
    }
    eprintln!(
        "/healthz with 1,100 idle connections held: slowest of 10 answered in {:.1} ms",
        slowest.as_secs_f64() * 1e3
    );
    // Tag events keep flowing while the flood is held.
    sub.wait_for(
        "tag events during the flood",
        Duration::from_secs(30),
        |all| kind(all, "styles").len() >= events_before + 3,
    );
    let (code, _, metrics) = get(local, http_port, "/metrics", "");
    assert_eq!(code, 200);
    let line = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
            .to_string()
    };
    let evicted = line("stylecam_http_refused_total{reason=\"evicted idle\"}");
    eprintln!("{evicted}\n{}", line("stylecam_http_connections "));
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "{}",
        daemon.log_text()
    );
    drop(held);

    let log = daemon.log_text();
    assert!(
        !log.contains("Too many open files") && !log.contains("os error 24"),
        "{log}"
    );
    let full_lines = log.matches("the listener is full").count();
    assert!(
        (1..=5).contains(&full_lines),
        "refusals logged, rate-limited: {full_lines} lines\n{log}"
    );
    daemon.signal("TERM");
    assert!(daemon.wait(Duration::from_secs(30)).success());
}

#[test]
fn beyond_loopback_tokens_sessions_hosts_and_rotation_hold() {
    let Some(ip) = non_loopback_ip() else {
        assert!(
            !available("a non-loopback address on this machine", false),
            "unreachable"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let token_file = dir.path().join("http-token");
    std::fs::write(&token_file, "first-token-0123456789\n").unwrap();
    // An MQTT port nobody listens on: the page works without a broker.
    let cfg = daemon_config(dir.path(), &photos(dir.path()), free_port(), "it-guard", "");
    with_listen(
        &cfg,
        &format!(
            "\n[metrics]\nlisten = \"0.0.0.0:{http_port}\"\n[http]\ntoken_file = \"{}\"\n",
            token_file.display()
        ),
    );
    let mut daemon = run_daemon(&cfg, &[]);
    assert!(
        wait_for_port(http_port, Duration::from_secs(60)),
        "{}",
        daemon.log_text()
    );
    let local = IpAddr::from([127, 0, 0, 1]);

    // DNS rebinding: loopback, but a foreign name.
    let (code, _, body) = request(
        local,
        http_port,
        "GET /api/status HTTP/1.1\r\nHost: rebind.evil.example:80\r\n\r\n",
    );
    assert_eq!(code, 421, "{body}");
    let (code, _, _) = get(local, http_port, "/api/status", "");
    assert_eq!(code, 200, "loopback naming the box needs no token");

    // Beyond loopback: the token, or a session.
    assert_eq!(get(ip, http_port, "/api/status", "").0, 401);
    let login = |token: &str| {
        let body = format!("token={token}");
        request(
            ip,
            http_port,
            &format!(
                "POST /login HTTP/1.1\r\nHost: {ip}:{http_port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    let session_of = |head: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix("Set-Cookie: stylecam_session="))
            .map(|v| v.split(';').next().unwrap().to_string())
            .unwrap_or_else(|| panic!("no session cookie in {head}"))
    };
    let (code, head, _) = login("first-token-0123456789");
    assert_eq!(code, 303, "{head}");
    let session = session_of(&head);
    assert_eq!(session.len(), 64, "a random id: {session}");
    assert!(!session.contains("first-token") && !head.contains("66697273742d"));
    assert!(head.contains("Max-Age=43200"), "{head}");
    let cookie = format!("Cookie: stylecam_session={session}\r\n");
    let (code, _, body) = get(ip, http_port, "/api/status", &cookie);
    assert_eq!(code, 200);
    assert!(
        body.contains("\"signed_in\":true"),
        "the page offers Sign out: {body}"
    );
    // Sign out: the session ends on the box, not only in the browser.
    let (code, head, _) = request(
        ip,
        http_port,
        &format!(
            "POST /logout HTTP/1.1\r\nHost: {ip}:{http_port}\r\n{cookie}Content-Length: 0\r\n\r\n"
        ),
    );
    assert_eq!(code, 303, "{head}");
    assert!(head.contains("Max-Age=0"), "{head}");
    assert_eq!(get(ip, http_port, "/api/status", &cookie).0, 401);

    // Rotation: the file changes, a reload re-reads it; the old token and
    // its sessions stop working.
    let (_, head, _) = login("first-token-0123456789");
    let cookie = format!("Cookie: stylecam_session={}\r\n", session_of(&head));
    std::fs::write(&token_file, "second-token-9876543210\n").unwrap();
    daemon.signal("HUP");
    wait_log(
        &daemon,
        "the token changed on reload",
        1,
        Duration::from_secs(60),
    );
    assert_eq!(get(ip, http_port, "/api/status", &cookie).0, 401);
    let old = "Authorization: Bearer first-token-0123456789\r\n";
    let new = "Authorization: Bearer second-token-9876543210\r\n";
    assert_eq!(get(ip, http_port, "/api/status", old).0, 401);
    assert_eq!(get(ip, http_port, "/api/status", new).0, 200);

    // Wrong tokens: past five a minute the address waits, even with the
    // right one; logged.
    let wrong = "Authorization: Bearer guessing\r\n";
    for _ in 0..4 {
        assert_eq!(get(ip, http_port, "/metrics", wrong).0, 401);
    }
    assert_eq!(login("guessing-again").0, 429);
    let (code, head, _) = get(ip, http_port, "/api/status", new);
    assert_eq!(code, 429, "{head}");
    assert!(head.contains("Retry-After:"), "{head}");
    // /healthz stays open, and tells a stranger only ok / not ok.
    let (code, _, body) = get(ip, http_port, "/healthz", "");
    assert!(code == 200 || code == 503, "{body}");
    assert!(!body.contains("entrance"), "{body}");
    // The daemon's log is written as it goes: wait for the line.
    wait_log(
        &daemon,
        &format!("a wrong token from {ip}"),
        1,
        Duration::from_secs(10),
    );
    let log = daemon.log_text();
    for secret in ["first-token-0123456789", "second-token-9876543210"] {
        assert!(!log.contains(secret), "{secret} logged:\n{log}");
    }
    daemon.signal("TERM");
    daemon.wait(Duration::from_secs(30));
}

#[test]
fn a_config_error_never_quotes_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "secret-from-the-token-file\n").unwrap();
    let cases = [
        (
            "[mqtt]\nusername = \"u\"\npassword = \"pw-unterminated-4711\n",
            "pw-unterminated-4711",
        ),
        (
            "mqtt = { username = \"u\", password = \"inline-pw-4711\", port = }\n",
            "inline-pw-4711",
        ),
        (
            "[http]\ntoken = bare-token-value-4711\n",
            "bare-token-value-4711",
        ),
        (
            "[http]\ntoken = \"quoted-token-4711\" junk\n",
            "quoted-token-4711",
        ),
        (
            &format!(
                "[http]\ntoken_file = \"{}\"\nsnapshots = \"secret-from-the-token-file\n",
                token_file.display()
            ),
            "secret-from-the-token-file",
        ),
    ];
    for (i, (text, secret)) in cases.iter().enumerate() {
        let cfg = dir.path().join(format!("c{i}.toml"));
        std::fs::write(&cfg, text).unwrap();
        let out = stylecam().arg("check-config").arg(&cfg).output().unwrap();
        let said = output_text(&out);
        assert!(!out.status.success(), "case {i} parsed:\n{said}");
        assert!(
            !said.contains(secret),
            "case {i} quotes the secret:\n{said}"
        );
        assert!(said.contains("config"), "case {i} still explains:\n{said}");
    }
}
