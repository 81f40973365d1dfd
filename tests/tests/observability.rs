//! What operators watch: `fusehost status` in every format, and `/metrics` scraped by a
//! real Prometheus server (Debian's `prometheus`, started by the test on loopback).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fusehost_tests::{fusehost, mount_lines, run_to_end, status_json, stderr_text, tool, write_config, Host};

/// A config with two mounts and `/metrics` on a port the kernel picks.
fn host_with_metrics() -> (Host, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[mount_lines("scratch", "memfs", ""), mount_lines("docs", "hello", "")]);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replacen("[host]\n", "[host]\nmetrics_listen = \"127.0.0.1:0\"\n", 1)).unwrap();
    let points = vec![dir.path().join("mnt/scratch"), dir.path().join("mnt/docs")];
    let host = Host::run_config(&config, dir, points);
    let line = host.wait_for_stdout("metrics at http://").expect("the metrics address is announced");
    let address = line.split("http://").nth(1).and_then(|rest| rest.strip_suffix("/metrics")).unwrap().to_owned();
    (host, address)
}

/// One HTTP/1.1 GET, the whole answer (the server closes after `Connection: close`).
fn http_get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("the metrics port answers");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("a complete answer");
    answer
}

/// The value of the sample `name{labels}` in exposition text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn status_counts_not_found_apart_from_errors_and_shows_bytes_and_latency() {
    let host = Host::run_mounts(&[mount_lines("scratch", "memfs", "")]);
    std::fs::write(host.path("file"), vec![7u8; 10_000]).unwrap();
    // O_DIRECT: every byte read comes through the mount, none from the page cache.
    let mut direct =
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(host.path("file")).unwrap();
    let mut back = Vec::new();
    direct.read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), 10_000);
    for missing in 0..5 {
        assert!(std::fs::metadata(host.path(&format!("missing-{missing}"))).is_err());
    }
    let status = status_json(&host.control_socket());
    assert_eq!(status["version"], 1, "{status}");
    let mount = &status["mounts"][0];
    let lookup = &mount["requests"]["lookup"];
    assert!(lookup["not_found"].as_u64().unwrap() >= 5, "{lookup}");
    assert_eq!(lookup["errors"], 0, "{lookup}");
    assert_eq!(lookup["errnos"]["ENOENT"], lookup["not_found"], "{lookup}");
    assert_eq!(mount["requests"]["flush"]["unsupported"], 1, "{mount}");
    assert_eq!(mount["requests"]["flush"]["errors"], 0, "{mount}");
    assert_eq!(mount["bytes_written"], 10_000, "{mount}");
    assert_eq!(mount["bytes_read"], 10_000, "{mount}");
    let latency: u64 = lookup["latency_counts"].as_array().unwrap().iter().filter_map(|n| n.as_u64()).sum();
    assert_eq!(latency, lookup["requests"].as_u64().unwrap(), "every lookup answered is timed");
    assert_eq!(mount["in_flight"], 0, "{mount}");

    // The table for people shows the same split.
    let mut command = fusehost();
    command.arg("status").arg("--socket").arg(host.control_socket());
    let output = run_to_end(command);
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(table.contains("NOT-FOUND"), "{table}");
    assert!(table.contains("bytes read"), "{table}");
    // Nothing failed: missing names are NOT-FOUND and the FLUSH memfs declines is
    // UNSUPPORTED, so the ERRORS column is 0.
    let row = table.lines().find(|line| line.starts_with("scratch")).unwrap();
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(columns[7], "0", "errors: {row}");
    assert!(columns[8].parse::<u64>().unwrap() >= 5, "not found: {row}");
    assert_eq!(columns[9], "1", "unsupported (FLUSH, once): {row}");
}

#[test]
fn status_in_prometheus_format_passes_promtool() {
    let Some(promtool) = tool("promtool", "apt-get install prometheus") else { return };
    let host = Host::run_mounts(&[mount_lines("scratch", "memfs", "")]);
    std::fs::write(host.path("a"), "x").unwrap();
    let mut command = fusehost();
    command.arg("status").arg("--format").arg("prometheus").arg("--socket").arg(host.control_socket());
    let output = run_to_end(command);
    assert!(output.status.success(), "{}", stderr_text(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(sample(&text, "fusehost_requests_total{mount=\"scratch\",operation=\"create\"}") >= Some(1.0), "{text}");
    assert!(sample(&text, "fusehost_written_bytes_total{mount=\"scratch\"}") == Some(1.0), "{text}");

    let mut promtool = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[test]
fn metrics_listen_serves_the_same_figures_over_http() {
    let (host, address) = host_with_metrics();
    std::fs::write(host.mountpoints[0].join("f"), "12345").unwrap();
    assert!(!std::fs::read_to_string(host.mountpoints[1].join("hello.txt")).unwrap().is_empty());
    let answer = http_get(&address, "/metrics");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{answer}");
    assert_eq!(sample(&answer, "fusehost_written_bytes_total{mount=\"scratch\"}"), Some(5.0), "{answer}");
    assert!(sample(&answer, "fusehost_read_bytes_total{mount=\"docs\"}") > Some(0.0), "{answer}");
    assert!(answer.contains("fusehost_request_duration_seconds_bucket{mount=\"docs\",operation=\"read\",le=\"+Inf\"}"));
    assert!(http_get(&address, "/nothing").starts_with("HTTP/1.1 404"));
}

/// A Prometheus server scraping `target` every second, with its own data folder.
struct Prometheus {
    child: Child,
    address: String,
}

impl Prometheus {
    fn start(program: &Path, dir: &Path, target: &str) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: fusehost\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        // A free port for Prometheus' own API: bind, read it, release it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let address = format!("127.0.0.1:{port}");
        let child = Command::new(program)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts");
        Prometheus { child, address }
    }

    /// The value Prometheus holds for `query`, once it has one.
    fn value(&self, query: &str, deadline: Instant) -> Option<String> {
        while Instant::now() < deadline {
            let path =
                format!("/api/v1/query?query={}", query.replace('{', "%7B").replace('}', "%7D").replace('"', "%22"));
            if let Ok(mut stream) = TcpStream::connect(&self.address) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.address);
                let mut answer = String::new();
                if stream.write_all(request.as_bytes()).is_ok() && stream.read_to_string(&mut answer).is_ok() {
                    if let Some(body) = answer.split("\r\n\r\n").nth(1) {
                        let json: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or_default();
                        if let Some(value) = json["data"]["result"][0]["value"][1].as_str() {
                            return Some(value.to_owned());
                        }
                    }
                }
            }
            // Prometheus scrapes once a second; ask again a little later.
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_prometheus_server_scrapes_metrics_listen() {
    let Some(prometheus) = tool("prometheus", "apt-get install prometheus") else { return };
    let (host, address) = host_with_metrics();
    std::fs::write(host.mountpoints[0].join("scraped"), "123").unwrap();
    let prometheus = Prometheus::start(&prometheus, host.dir.path(), &address);
    let deadline = Instant::now() + Duration::from_secs(60);
    let written = prometheus.value("fusehost_written_bytes_total{mount=\"scratch\"}", deadline);
    assert_eq!(written.as_deref(), Some("3"), "Prometheus scraped the written bytes");
    let up = prometheus.value("up{job=\"fusehost\"}", deadline);
    assert_eq!(up.as_deref(), Some("1"));
}
