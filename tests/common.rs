//! Test helpers: the binary, a real mosquitto on a free loopback port,
//! Python references, skipping rules.

#![allow(dead_code)]

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn stylecam() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stylecam"));
    c.current_dir(repo());
    // A developer's environment must not leak into the config under test.
    for (k, _) in std::env::vars() {
        if k.starts_with("STYLECAM_") {
            c.env_remove(k);
        }
    }
    c
}

/// Skips (returns false) when a reference is missing, unless CI requires it.
pub fn available(what: &str, ok: bool) -> bool {
    if !ok {
        if std::env::var("REQUIRE_REFERENCE_CHECKS").as_deref() == Ok("1") {
            panic!("{what} is required (REQUIRE_REFERENCE_CHECKS=1) but missing");
        }
        eprintln!("SKIP: {what} is not available");
    }
    ok
}

/// `REQUIRE_GPU=1` (the device check sets it): a missing GPU, CUDA or
/// TensorRT is a failure instead of a skip.
pub fn require_gpu() -> bool {
    std::env::var("REQUIRE_GPU").as_deref() == Ok("1")
}

pub fn python_has(modules: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a Python script from tests/ref with arguments; panics with its stderr on failure.
pub fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(repo().join("tests/ref").join(script))
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A finished command's stdout and stderr together, as text.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

pub fn write_f32(path: &Path, v: &[f32]) {
    std::fs::write(
        path,
        v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .unwrap();
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

pub fn mosquitto_path() -> Option<PathBuf> {
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// A real mosquitto on 127.0.0.1:port, killed on drop.
pub struct Mosquitto {
    pub port: u16,
    child: Child,
    _dir: Option<tempfile::TempDir>,
}

impl Mosquitto {
    pub fn start(port: u16) -> Self {
        Self::start_with(port, "allow_anonymous true\npersistence false\n", |_| {})
    }

    /// Starts with extra config lines (`{dir}` stands for the broker's
    /// folder); `prepare` may write files there first (password file, ACL).
    pub fn start_with(port: u16, extra: &str, prepare: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let mut me = Self::start_in(port, dir.path(), extra);
        me._dir = Some(dir);
        me
    }

    /// Starts with its config and state in `dir`, which outlives it (for a
    /// broker restarted with persistence).
    pub fn start_in(port: u16, dir: &Path, extra: &str) -> Self {
        let conf = dir.join("mosquitto.conf");
        let extra = extra.replace("{dir}", dir.to_str().unwrap());
        // As root, stay root: the test's files are private to it.
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nuser root\n{extra}"),
        )
        .unwrap();
        let child = Command::new(mosquitto_path().expect("mosquitto"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        assert!(
            wait_for_port(port, Duration::from_secs(10)),
            "mosquitto did not open port {port}"
        );
        Self {
            port,
            child,
            _dir: None,
        }
    }

    /// Sends it signal `sig`, e.g. `HUP` (mosquitto 2 re-reads its config:
    /// password and ACL files).
    pub fn signal(&self, sig: &str) {
        send_signal(self.child.id(), sig);
    }

    /// Stops it as an admin would (SIGTERM: it saves its state first).
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process whose stderr lines are collected in the background.
pub struct Daemon {
    pub child: Child,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Daemon {
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start stylecam");
        let err = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, log }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn signal(&self, sig: &str) {
        send_signal(self.child.id(), sig);
    }

    /// Waits for exit; panics after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                t.elapsed() < timeout,
                "daemon did not exit in {timeout:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `stylecam run --config cfg` with extra environment variables.
pub fn run_daemon(cfg: &Path, env: &[(&str, &str)]) -> Daemon {
    let mut cmd = stylecam();
    cmd.args(["run", "--config"])
        .arg(cfg)
        .envs(env.iter().copied());
    Daemon::spawn(cmd)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a daemon config for a files camera over `photos`; `extra` lines
/// land in its `[outbox]` section.
pub fn daemon_config(dir: &Path, photos: &Path, port: u16, device: &str, extra: &str) -> PathBuf {
    let text = format!(
        r#"device = "{device}"
[model]
bundle = "{bundle}"
backend = "cpu"
[[cameras]]
name = "entrance"
source = "files"
path = "{photos}"
loop = true
repeat = 3
fps = 20.0
[smoothing]
window = 1
enter_frames = 2
leave_frames = 2
[mqtt]
embedded = false
host = "127.0.0.1"
port = {port}
keep_alive_s = 5
[outbox]
path = "{outbox}"
{extra}
"#,
        outbox = dir.join("outbox.redb").display(),
        bundle = repo().join("assets/demo-bundle").display(),
        photos = photos.display(),
    );
    let path = dir.join("stylecam.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A [`daemon_config`] text with its `model.bundle` line (the demo
/// bundle) replaced by `lines`.
pub fn with_bundle_lines(text: &str, lines: &str) -> String {
    let demo = format!(
        "bundle = \"{}\"",
        repo().join("assets/demo-bundle").display()
    );
    assert!(text.contains(&demo), "not a daemon_config text");
    text.replace(&demo, lines)
}

/// Forwards 127.0.0.1:`listen` to 127.0.0.1:`target` while up; `cut`
/// closes every open connection and refuses new ones (a network outage
/// between the daemon and the broker), `restore` ends the outage.
pub struct Proxy {
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn start(listen: u16, target: u16) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind(("127.0.0.1", listen)).expect("proxy port");
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(vec![]));
        let (up2, open2) = (up.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused in effect
                }
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                open2
                    .lock()
                    .unwrap()
                    .extend([client.try_clone().unwrap(), upstream.try_clone().unwrap()]);
                let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let (mut c1, mut u1) = (client, upstream);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c1, &mut u1);
                    let _ = u1.shutdown(std::net::Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Self { up, open }
    }

    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A folder with copies of the sample photos, for a files camera.
pub fn photos(dir: &Path) -> PathBuf {
    let photos = dir.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for f in ["astronaut.jpg", "camera.png"] {
        std::fs::copy(repo().join("assets/photos").join(f), photos.join(f)).unwrap();
    }
    photos
}

/// Waits until the daemon's log holds `what` at least `n` times.
pub fn wait_log(daemon: &Daemon, what: &str, n: usize, timeout: Duration) {
    let t = Instant::now();
    while daemon.log_text().matches(what).count() < n {
        assert!(
            t.elapsed() < timeout,
            "waited for {n}x {what:?}; log:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// Subscribers and the payload schema, shared by every MQTT test.

#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub retain: bool,
    pub json: serde_json::Value,
}

/// An independent subscriber (what an inventory system runs).
pub struct Collector {
    got: Arc<Mutex<Vec<Received>>>,
}

impl Collector {
    pub fn start(port: u16, filter: &str, id: &str) -> Self {
        Self::start_as(port, filter, id, None)
    }

    /// A subscriber whose session the broker keeps while it is away (and,
    /// with persistence, across a broker restart).
    pub fn start_persistent(port: u16, filter: &str, id: &str) -> Self {
        Self::spawn(port, filter, id, None, false)
    }

    /// A subscriber that logs in as `login` (user, password).
    pub fn start_as(port: u16, filter: &str, id: &str, login: Option<(&str, &str)>) -> Self {
        Self::spawn(port, filter, id, login, true)
    }

    fn spawn(port: u16, filter: &str, id: &str, login: Option<(&str, &str)>, clean: bool) -> Self {
        let login = login.map(|(u, p)| (u.to_string(), p.to_string()));
        let got = Arc::new(Mutex::new(vec![]));
        let sink = got.clone();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let (filter, id) = (filter.to_string(), id.to_string());
        std::thread::spawn(move || {
            let mut opts = MqttOptions::new(id, "127.0.0.1", port);
            opts.set_keep_alive(Duration::from_secs(5));
            // rumqttc's 10 KiB default would refuse a large health message.
            opts.set_max_packet_size(1 << 20, 1 << 20);
            if let Some((u, p)) = login {
                opts.set_credentials(u, p);
            }
            opts.set_clean_session(clean);
            let (client, mut conn) = Client::new(opts, 64);
            client.subscribe(filter.clone(), QoS::AtLeastOnce).unwrap();
            for ev in conn.iter() {
                match ev {
                    // A broker that lost our session (restarted without it)
                    // or our shared subscription (mosquitto 2.0 keeps
                    // `$share/…` subscriptions out of its persistence file):
                    // subscribe again, as a real consumer does.
                    Ok(Event::Incoming(Packet::ConnAck(ack)))
                        if !ack.session_present || filter.starts_with("$share/") =>
                    {
                        let _ = client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let json =
                            serde_json::from_slice(&p.payload).unwrap_or(serde_json::Value::Null);
                        sink.lock().unwrap().push(Received {
                            topic: p.topic.clone(),
                            retain: p.retain,
                            json,
                        });
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        ready
            .recv_timeout(Duration::from_secs(10))
            .expect("subscriber could not subscribe");
        Self { got }
    }

    pub fn all(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let t = Instant::now();
        loop {
            let all = self.all();
            if pred(&all) {
                return all;
            }
            assert!(
                t.elapsed() < timeout,
                "timed out waiting for {what}; got {:#?}",
                all.iter().map(|r| (&r.topic, &r.json)).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn schema() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(stylecam::publish::SCHEMA).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles")
}

pub fn assert_valid(v: &jsonschema::Validator, r: &Received) {
    let errors: Vec<String> = v.iter_errors(&r.json).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{} payload {} violates the schema: {errors:?}",
        r.topic,
        r.json
    );
}

pub fn kind<'a>(all: &'a [Received], k: &str) -> Vec<&'a Received> {
    all.iter().filter(|r| r.json["kind"] == k).collect()
}

/// The daemon's exit summary as a subscriber sees it: at a clean shutdown
/// the daemon publishes a last `health` message and then `offline` on the
/// same connection, so the `nth` (1-based) health directly followed by an
/// offline status (a last will's `offline` follows no health). Waits for it.
pub fn exit_summary(sub: &Collector, nth: usize) -> serde_json::Value {
    fn summaries(all: &[Received]) -> Vec<serde_json::Value> {
        all.windows(2)
            .filter(|w| {
                w[0].json["kind"] == "health"
                    && w[1].json["kind"] == "status"
                    && w[1].json["state"] == "offline"
            })
            .map(|w| w[0].json.clone())
            .collect()
    }
    let all = sub.wait_for(
        "health then offline at shutdown",
        // Generous: a 15 s video on a loaded 2-core machine; it returns
        // as soon as the summary is there.
        Duration::from_secs(60),
        |all| summaries(all).len() >= nth,
    );
    summaries(&all)[nth - 1].clone()
}

/// One HTTP/1.1 GET on 127.0.0.1:port: (status code, body), None when it does not answer.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((code, body))
}

/// This machine's address on its default route (no packet is sent).
pub fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// `kill -SIG pid`; panics when it fails.
pub fn send_signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

/// A series of the daemon's `/metrics` on 127.0.0.1:`port`: the sum of
/// every sample named `series` (with labels given, that one sample; without,
/// all its labelled samples); 0 when it has none yet, `None` when
/// `/metrics` does not answer.
pub fn metric(port: u16, series: &str) -> Option<f64> {
    let (code, text) = http_get(port, "/metrics")?;
    if code != 200 {
        return None;
    }
    let labelled = format!("{series}{{");
    Some(
        text.lines()
            .filter_map(|l| l.rsplit_once(' '))
            .filter(|(name, _)| {
                *name == series || (!series.contains('{') && name.starts_with(&labelled))
            })
            .filter_map(|(_, v)| v.parse::<f64>().ok())
            .sum(),
    )
}

/// tests/browser: the page tests' scripts and their playwright-core.
pub fn browser_dir() -> PathBuf {
    repo().join("tests/browser")
}

/// Debian's chromium (or the older chromium-browser name).
pub fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A browser test can run: chromium, node, and tests/browser's
/// playwright-core (`npm ci` there).
pub fn browser_ready() -> bool {
    chromium().is_some()
        && std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        && browser_dir()
            .join("node_modules/playwright-core/package.json")
            .exists()
}

/// The store-day streams (issue 36, docs/store-day.md): `day/`, `short/`,
/// `light/`, `screen/` (JPEG frames a `files` camera plays in order), a
/// manifest `<name>.json` for each and `walkway.json` (vtest.avi itself:
/// `../ssdlite-v1/video`, which [`crate::people::ssdlite_data`] makes), made
/// from vtest.avi by tests/ref/store_day.py once per machine (about a
/// minute; `.ci/run` makes them) and reused; None (skipped) where vtest.avi
/// or Python's cv2 and numpy are missing.
pub fn store_day() -> Option<PathBuf> {
    let dir = crate::people::cache_root().join("storeday-v1");
    if dir.join(".complete").exists() {
        return Some(dir);
    }
    let vtest = std::env::var("VTEST_AVI")
        .unwrap_or_else(|_| "/usr/share/doc/opencv-doc/examples/data/vtest.avi".into());
    let ok = Path::new(&vtest).exists() && python_has("cv2, numpy");
    if !available(
        "the store-day streams' inputs: vtest.avi and Python's cv2 and numpy (apt install opencv-doc python3-opencv python3-numpy)",
        ok,
    ) {
        return None;
    }
    // Made beside the final place and renamed in whole, so a test running
    // at the same time never sees half of it; a folder left without its
    // marker (made by hand) is made again.
    let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
    std::fs::remove_dir_all(&tmp).ok();
    python("store_day.py", &[tmp.to_str().unwrap()]);
    if dir.exists() && !dir.join(".complete").exists() {
        std::fs::remove_dir_all(&dir).ok();
    }
    if std::fs::rename(&tmp, &dir).is_err() {
        std::fs::remove_dir_all(&tmp).ok();
    }
    assert!(
        dir.join(".complete").exists(),
        "{}: tests/ref/store_day.py did not complete it",
        dir.display()
    );
    Some(dir)
}
