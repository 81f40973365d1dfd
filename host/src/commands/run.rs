//! `fusehost run CONFIG`: every mount of a config, in the foreground, with a control
//! socket, reload on SIGHUP or `fusehost reload`, and a clean stop on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::time::Duration;

use crate::commands::foreground::{finish, POLL};
use crate::commands::say;
use crate::config;
use crate::control::{self, ControlSocket, Request};
use crate::error::HostError;
use crate::logging::LogFormat;
use crate::metrics_server::MetricsServer;
use crate::signals::{self, HostSignal};
use crate::status_report::HostStatus;
use crate::supervisor::{ReloadReport, Supervisor};
use crate::systemd;

/// How long a scrape waits for the main loop (Prometheus' own default timeout is 10 s).
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

enum Event {
    Signal(HostSignal),
    Control(Request),
    /// A `/metrics` scrape: the status itself, not the control socket's JSON of it.
    Scrape(Sender<HostStatus>),
}

pub fn run(config_file: &Path, verbosity: u8, log_format: LogFormat) -> Result<(), HostError> {
    let config = config::load(config_file).map_err(|error| HostError::Config(error.to_string()))?;
    crate::logging::init(verbosity, config.host.log.as_deref(), log_format);

    let (events, incoming) = channel();
    let signal_events = events.clone();
    signals::listen_with(move |signal| signal_events.send(Event::Signal(signal)).is_ok())
        .map_err(|source| HostError::Io { context: "installing signal handlers".into(), source })?;
    let socket_path = config.host.control_socket.clone().unwrap_or_else(control::default_socket_path);
    let mut socket = ControlSocket::bind(&socket_path)?;

    let metrics_listen = config.host.metrics_listen;
    let mut supervisor = Supervisor::start(config)?;
    let _metrics = match metrics_listen {
        Some(address) => Some(serve_metrics(address, events.clone())?),
        None => None,
    };
    socket
        .serve(move |request| events.send(Event::Control(request)).is_ok())
        .map_err(|source| HostError::Io { context: "starting the control socket".into(), source })?;
    say(format_args!("fusehost: control socket at {}", socket.path().display()));
    tracing::info!("serving {} mount(s); SIGHUP reloads, Ctrl-C or SIGTERM stops", supervisor.len());
    systemd::ready(supervisor.len());

    loop {
        match incoming.recv_timeout(POLL) {
            Ok(Event::Signal(HostSignal::Stop(signal))) => {
                tracing::info!("{} received: unmounting everything", signals::name(signal));
                systemd::stopping();
                break;
            }
            Ok(Event::Signal(HostSignal::Reload)) => {
                tracing::info!("SIGHUP received: reloading {}", config_file.display());
                reload(&mut supervisor, config_file);
            }
            Ok(Event::Control(request)) => {
                let answer = match request.command {
                    control::Command::Status => serde_json::to_string(&supervisor.status()),
                    control::Command::Reload => serde_json::to_string(&reload(&mut supervisor, config_file)),
                };
                let _ = request.reply.send(answer.unwrap_or_else(|error| format!("{{\"error\":\"{error}\"}}")));
            }
            Ok(Event::Scrape(reply)) => {
                let _ = reply.send(supervisor.status());
            }
            Err(RecvTimeoutError::Timeout) => supervisor.reap_ended(),
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let stop_timeout = supervisor.stop_timeout();
    let lingering = supervisor.stop();
    finish(lingering, stop_timeout, |wait| {
        matches!(incoming.recv_timeout(wait), Ok(Event::Signal(HostSignal::Stop(_))))
    });
    Ok(())
}

/// Serves `/metrics`, asking the main loop for the status at each scrape.
fn serve_metrics(address: SocketAddr, events: Sender<Event>) -> Result<MetricsServer, HostError> {
    let server = MetricsServer::start(address, move || {
        let (reply, answer) = channel();
        events.send(Event::Scrape(reply)).ok()?;
        answer.recv_timeout(SCRAPE_TIMEOUT).ok()
    })?;
    say(format_args!("fusehost: metrics at http://{}/metrics", server.address()));
    Ok(server)
}

/// Rereads the config and applies it; a config that does not parse changes nothing.
fn reload(supervisor: &mut Supervisor, config_file: &Path) -> ReloadReport {
    systemd::reloading();
    let report = match config::load(config_file) {
        Ok(config) => supervisor.reload(config),
        Err(error) => ReloadReport { refused: Some(error.to_string()), ..ReloadReport::default() },
    };
    match &report.refused {
        Some(reason) => tracing::error!("reload refused, nothing changed: {reason}"),
        None => tracing::info!(
            "reloaded: added {:?}, removed {:?}, changed {:?}, unchanged {:?}",
            report.added,
            report.removed,
            report.changed,
            report.unchanged
        ),
    }
    systemd::reloaded(supervisor.len(), report.refused.as_deref());
    report
}
