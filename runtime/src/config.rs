//! The agent's configuration file (TOML): where its state lives, where it
//! listens, whom it asks first, how it logs. Every field has a default but
//! `state_dir`; an unknown field or a wrong value is an error that names
//! the field and says what is expected (docs/operations.md has the
//! reference).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use fleetmesh_node::{NodeMeta, VerifyBudget};
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use serde::Deserialize;

/// The listen address used when the file names none: every IPv4
/// interface, UDP port 7946, QUIC.
pub const DEFAULT_LISTEN: &str = "/ip4/0.0.0.0/udp/7946/quic-v1";
/// The admin API's socket file in the state directory, where it listens
/// when the file names no other place (`admin = "unix"`).
pub const ADMIN_SOCKET: &str = "admin.sock";
/// The admin API's token file in the state directory: written at each
/// start when the API listens on TCP and `admin_token_file` names none.
pub const ADMIN_TOKEN: &str = "admin.token";

/// Where an admin API listens, or where a client finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix domain socket: only users the file's mode lets in (the
    /// agent's user and group) can connect.
    Unix(PathBuf),
    /// A loopback TCP address: any local user can connect, so every request
    /// must carry the agent's token.
    Tcp(SocketAddr),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(formatter, "{}", path.display()),
            Endpoint::Tcp(addr) => write!(formatter, "{addr}"),
        }
    }
}

/// The command line's form: `IP:PORT`, else a socket path (with or
/// without a `unix:` prefix; relative to the working directory).
impl FromStr for Endpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Endpoint, String> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Endpoint::Tcp(addr));
        }
        let path = text.strip_prefix("unix:").unwrap_or(text);
        if path.is_empty() {
            return Err(format!(
                "{text:?} is neither a socket path nor IP:PORT; give e.g. /var/lib/fleetmesh/{ADMIN_SOCKET} or 127.0.0.1:7947"
            ));
        }
        Ok(Endpoint::Unix(PathBuf::from(path)))
    }
}

/// Protocol timing preset: the core's `Config::lan` or `Config::wan`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// One site: sub-millisecond to a few milliseconds of latency.
    Lan,
    /// Sites joined over the internet: tens to hundreds of milliseconds.
    Wan,
}

/// How log lines are written to standard error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Bounds on what peers can make this agent hold. Each bounded queue drops
/// (and counts) once full instead of growing. [`Limits::RANGES`] lists the
/// values the file may give each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most connections open at once, both directions (default 512).
    pub connections_max: u32,
    /// Most connections to one peer (default 2).
    pub connections_per_peer: u32,
    /// Most incoming connections still in their handshake (default 64).
    pub pending_incoming_max: u32,
    /// Most outgoing connections still in their handshake: members'
    /// announced addresses are theirs to choose, so dials are bounded too
    /// (default 64).
    pub pending_outgoing_max: u32,
    /// Most incoming connections from peers this agent does not admit
    /// (yet): a joiner's stay there lasts one Hello, anyone else's is
    /// refused past this many (default 32; `connections_max` bounds all
    /// connections, these included).
    pub unadmitted_connections_max: u32,
    /// Seconds a connection's peer has to be admitted (its Hello) before
    /// the connection is closed (default 10).
    pub unadmitted_grace_secs: u64,
    /// Most bytes of messages sent to one peer and not yet acknowledged;
    /// past it, messages to that peer are dropped (a slow peer slows only
    /// itself; default 4 MiB).
    pub queue_bytes_per_peer: usize,
    /// Most messages sent to one peer and not yet acknowledged (default
    /// 1024).
    pub queue_messages_per_peer: usize,
    /// Most bytes of unacknowledged messages to all peers together
    /// (default 64 MiB).
    pub queue_bytes_max: usize,
    /// Most messages one connection reads or writes at once; more wait in
    /// QUIC's own flow control (default 16).
    pub streams_per_connection: usize,
    /// Most checks and actions running at once; a task over it fails at
    /// once with that reason (default 64).
    pub tasks_running_max: usize,
    /// Most bytes of a check's or an action's output kept (the rest is
    /// read and dropped; default 4096).
    pub output_bytes_max: usize,
    /// Signature verifications per second one admitted peer's messages may
    /// cost this agent; past it (and its burst), its messages that would
    /// verify are dropped and counted (default 1024; the core's
    /// `Config::verify_per_peer`).
    pub verify_per_peer_per_second: u32,
    /// Verifications one admitted peer may cost at once: covers a joiner's
    /// catch-up from one peer (default 16384).
    pub verify_per_peer_burst: u32,
    /// Verifications per second all peers not admitted together may cost
    /// (each Hello checks a certificate; default 1024).
    pub verify_unadmitted_per_second: u32,
    /// Verifications peers not admitted may cost at once (default 2048).
    pub verify_unadmitted_burst: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        let protocol = fleetmesh_node::Config::lan();
        Limits {
            connections_max: 512,
            connections_per_peer: 2,
            pending_incoming_max: 64,
            pending_outgoing_max: 64,
            unadmitted_connections_max: 32,
            unadmitted_grace_secs: 10,
            queue_bytes_per_peer: 4 << 20,
            queue_messages_per_peer: 1024,
            queue_bytes_max: 64 << 20,
            streams_per_connection: 16,
            tasks_running_max: 64,
            output_bytes_max: 4096,
            verify_per_peer_per_second: protocol.verify_per_peer.per_second.get(),
            verify_per_peer_burst: protocol.verify_per_peer.burst.get(),
            verify_unadmitted_per_second: protocol.verify_unadmitted.per_second.get(),
            verify_unadmitted_burst: protocol.verify_unadmitted.burst.get(),
        }
    }
}

/// One limit as the file may set it: its name under `[limits]`, the
/// values accepted, and the field it sets.
pub struct LimitRange {
    /// The key under `[limits]`.
    pub name: &'static str,
    /// The least value accepted.
    pub min: u64,
    /// The greatest value accepted.
    pub max: u64,
    /// Sets the field; fails only for a value that does not fit its type,
    /// which the range rules out.
    set: fn(&mut Limits, u64) -> Result<(), std::num::TryFromIntError>,
}

/// A [`LimitRange`] for field `$field`, from `$min` to `$max`.
macro_rules! range {
    ($field:ident, $min:expr, $max:expr) => {
        LimitRange {
            name: stringify!($field),
            min: $min,
            max: $max,
            set: |limits, value| {
                limits.$field = value.try_into()?;
                Ok(())
            },
        }
    };
}

/// The largest message, as the bound some byte limits may not go under.
const MESSAGE: u64 = fleetmesh_node::limits::MESSAGE_BYTES_MAX as u64;

impl Limits {
    /// Every limit and the values it accepts: enough for any fleet, small
    /// enough that no value wraps or stops the agent from working (a
    /// byte queue below the largest message could never send it).
    pub const RANGES: &[LimitRange] = &[
        range!(connections_max, 1, 65_536),
        range!(connections_per_peer, 1, 16),
        range!(pending_incoming_max, 1, 4_096),
        range!(pending_outgoing_max, 1, 4_096),
        range!(unadmitted_connections_max, 1, 4_096),
        range!(unadmitted_grace_secs, 1, 3_600),
        range!(queue_bytes_per_peer, MESSAGE, 1 << 30),
        range!(queue_messages_per_peer, 1, 1 << 20),
        range!(queue_bytes_max, MESSAGE, 1 << 36),
        range!(streams_per_connection, 1, 1_024),
        range!(tasks_running_max, 1, 4_096),
        range!(output_bytes_max, 1, 16 << 20),
        range!(verify_per_peer_per_second, 1, 1_000_000),
        range!(verify_per_peer_burst, 1, 1_000_000),
        range!(verify_unadmitted_per_second, 1, 1_000_000),
        range!(verify_unadmitted_burst, 1, 1_000_000),
    ];

    /// The limits the `[limits]` table sets, defaults for the rest. An
    /// unknown key, a value that is not a whole number or one out of its
    /// range is an error naming the field and the range.
    fn from_table(table: &toml::Table) -> anyhow::Result<Limits> {
        let mut limits = Limits::default();
        for (key, value) in table {
            let Some(range) = Limits::RANGES.iter().find(|range| range.name == key) else {
                let names: Vec<&str> = Limits::RANGES.iter().map(|range| range.name).collect();
                bail!(
                    "field `limits.{key}`: no such limit; the limits are {}",
                    names.join(", ")
                );
            };
            let (min, max) = (range.min, range.max);
            let number = value
                .as_integer()
                .and_then(|number| u64::try_from(number).ok())
                .filter(|number| (min..=max).contains(number));
            let Some(number) = number else {
                bail!(
                    "field `limits.{key}`: {value} is out of range; use a whole number from {min} to {max}"
                );
            };
            (range.set)(&mut limits, number).map_err(|error| {
                anyhow::anyhow!("field `limits.{key}`: {number} does not fit ({error}); use a whole number from {min} to {max}")
            })?;
        }
        Ok(limits)
    }

    /// How long a connection's peer has to be admitted.
    pub fn unadmitted_grace(&self) -> Duration {
        Duration::from_secs(self.unadmitted_grace_secs)
    }
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    state_dir: PathBuf,
    #[serde(default)]
    listen: Option<Vec<String>>,
    #[serde(default)]
    advertise: Vec<String>,
    #[serde(default)]
    bootstrap: Vec<String>,
    #[serde(default = "yes")]
    mdns: bool,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
    #[serde(default = "lan")]
    preset: Preset,
    #[serde(default)]
    admin: Option<String>,
    #[serde(default)]
    admin_token_file: Option<PathBuf>,
    #[serde(default = "human")]
    log_format: LogFormat,
    #[serde(default = "info")]
    log_level: String,
    #[serde(default)]
    limits: toml::Table,
}

fn yes() -> bool {
    true
}

fn lan() -> Preset {
    Preset::Lan
}

fn human() -> LogFormat {
    LogFormat::Human
}

fn info() -> String {
    "info".to_owned()
}

/// The agent's configuration, checked.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The state directory: identity, certificate, trust chain, durable
    /// state (see `crate::state`); required.
    pub state_dir: PathBuf,
    /// QUIC addresses to listen on (default [`DEFAULT_LISTEN`]).
    pub listen: Vec<Multiaddr>,
    /// Addresses announced to peers instead of the bound listen addresses
    /// (behind NAT, or to pick one interface); empty (the default): the
    /// bound ones.
    pub advertise: Vec<Multiaddr>,
    /// Peers dialed at start and until they answer (default none).
    pub bootstrap: Vec<Multiaddr>,
    /// Discover peers on the local network by mDNS (default on).
    pub mdns: bool,
    /// Tags announced to the fleet; `None`: the certificate's.
    pub tags: Option<BTreeMap<String, String>>,
    /// Protocol timing preset (default lan).
    pub preset: Preset,
    /// Where the admin API listens: a Unix socket (default
    /// [`ADMIN_SOCKET`] in the state directory) or a loopback TCP address;
    /// `None` (`"off"` in the file): disabled.
    pub admin: Option<Endpoint>,
    /// The token file a TCP admin API reads at start; `None`: the agent
    /// writes a fresh token to [`ADMIN_TOKEN`] in the state directory at
    /// each start (see [`AgentConfig::admin_token_path`]).
    pub admin_token_file: Option<PathBuf>,
    /// How logs are written (default human).
    pub log_format: LogFormat,
    /// Which logs are written (`tracing` filter syntax, e.g. `info` or
    /// `info,fleetmesh_runtime=debug`; default `info`).
    pub log_level: String,
    /// Resource bounds.
    pub limits: Limits,
}

impl AgentConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> anyhow::Result<AgentConfig> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read agent config {}: check the path and its permissions",
                path.display()
            )
        })?;
        let mut config = AgentConfig::parse(&text)
            .with_context(|| format!("agent config {}", path.display()))?;
        // Relative paths are relative to the config file, not to wherever
        // the agent (or the CLI reading its config) happened to start.
        if let Some(parent) = path.parent() {
            let rebase = |path: &mut PathBuf| *path = relative_to(parent, path);
            rebase(&mut config.state_dir);
            if let Some(Endpoint::Unix(socket)) = &mut config.admin {
                rebase(socket);
            }
            if let Some(token) = &mut config.admin_token_file {
                rebase(token);
            }
        }
        Ok(config)
    }

    /// Where the token of a TCP admin API is: the configured file, or the
    /// one the agent writes in its state directory. `None` unless the
    /// admin API listens on TCP.
    pub fn admin_token_path(&self) -> Option<PathBuf> {
        match self.admin {
            Some(Endpoint::Tcp(_)) => Some(
                self.admin_token_file
                    .clone()
                    .unwrap_or_else(|| self.state_dir.join(ADMIN_TOKEN)),
            ),
            Some(Endpoint::Unix(_)) | None => None,
        }
    }

    /// Parses and checks a config file's text.
    pub fn parse(text: &str) -> anyhow::Result<AgentConfig> {
        let file: File = toml::from_str(text)
            .map_err(|error| anyhow::anyhow!("{}", error.to_string().trim_end()))?;
        if file.state_dir.as_os_str().is_empty() {
            bail!("field `state_dir`: must name a directory, e.g. \"/var/lib/fleetmesh\"");
        }
        let listen = match file.listen {
            Some(listen) if listen.is_empty() => {
                bail!("field `listen`: give at least one address, e.g. [\"{DEFAULT_LISTEN}\"]")
            }
            Some(listen) => addresses("listen", &listen)?,
            None => addresses("listen", &[DEFAULT_LISTEN.to_owned()])?,
        };
        let advertise = addresses("advertise", &file.advertise)?;
        let bootstrap = addresses("bootstrap", &file.bootstrap)?;
        if let Some(tags) = &file.tags {
            let meta = NodeMeta {
                tags: tags.clone(),
                addrs: Vec::new(),
            };
            meta.validate()
                .map_err(|error| anyhow::anyhow!("field `tags`: {error}"))?;
        }
        let admin = admin_endpoint(file.admin.as_deref().unwrap_or("unix"), &file.state_dir)?;
        if file.admin_token_file.is_some() && !matches!(admin, Some(Endpoint::Tcp(_))) {
            bail!(
                "field `admin_token_file`: only a TCP admin API takes a token; remove the field, or set `admin` to a loopback address such as \"127.0.0.1:7947\""
            );
        }
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&file.log_level) {
            bail!(
                "field `log_level`: {:?} is not a log filter ({error}); use e.g. \"info\" or \"info,fleetmesh_runtime=debug\"",
                file.log_level
            );
        }
        let limits = Limits::from_table(&file.limits)?;
        let config = AgentConfig {
            state_dir: file.state_dir,
            listen,
            advertise,
            bootstrap,
            mdns: file.mdns,
            tags: file.tags,
            preset: file.preset,
            admin,
            admin_token_file: file.admin_token_file,
            log_format: file.log_format,
            log_level: file.log_level,
            limits,
        };
        config.protocol().validate().map_err(|error| {
            anyhow::anyhow!(
                "fields `preset` and `[limits]` give the core protocol parameters it refuses: {error}; change the verify_* limits or the preset"
            )
        })?;
        Ok(config)
    }

    /// The core's protocol parameters: the preset's, with the
    /// verification budgets of `limits`.
    pub fn protocol(&self) -> fleetmesh_node::Config {
        let preset = match self.preset {
            Preset::Lan => fleetmesh_node::Config::lan(),
            Preset::Wan => fleetmesh_node::Config::wan(),
        };
        let limits = &self.limits;
        fleetmesh_node::Config {
            verify_per_peer: VerifyBudget::new(
                limits.verify_per_peer_per_second,
                limits.verify_per_peer_burst,
            ),
            verify_unadmitted: VerifyBudget::new(
                limits.verify_unadmitted_per_second,
                limits.verify_unadmitted_burst,
            ),
            ..preset
        }
    }
}

/// `path` as seen from where `dir` is: `dir` joined with it when it is
/// relative, without its `.` parts ("./admin.sock" is "admin.sock"), and
/// `.` rather than nothing.
fn relative_to(dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_owned();
    }
    let rest: PathBuf = path
        .components()
        .filter(|part| *part != std::path::Component::CurDir)
        .collect();
    let joined = dir.join(rest);
    if joined.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        joined
    }
}

/// Parses the addresses of field `field`: multiaddrs ending in `quic-v1`
/// (optionally with a `/p2p/` peer id), or `IP:PORT` as shorthand for one.
fn addresses(field: &str, texts: &[String]) -> anyhow::Result<Vec<Multiaddr>> {
    texts
        .iter()
        .enumerate()
        .map(|(index, text)| address(text).with_context(|| format!("field `{field}[{index}]`")))
        .collect()
}

/// One QUIC address, as [`addresses`] accepts it.
pub fn address(text: &str) -> anyhow::Result<Multiaddr> {
    let text = text.trim();
    if let Ok(socket) = text.parse::<SocketAddr>() {
        let ip = match socket.ip() {
            IpAddr::V4(ip) => Protocol::Ip4(ip),
            IpAddr::V6(ip) => Protocol::Ip6(ip),
        };
        return Ok(Multiaddr::empty()
            .with(ip)
            .with(Protocol::Udp(socket.port()))
            .with(Protocol::QuicV1));
    }
    let addr: Multiaddr = text.parse().map_err(|error| {
        anyhow::anyhow!(
            "{text:?} is neither IP:PORT nor a multiaddr ({error}); write e.g. \"10.0.0.5:7946\" or \"/ip4/10.0.0.5/udp/7946/quic-v1\""
        )
    })?;
    let mut parts = addr.iter();
    let ip_ok = matches!(parts.next(), Some(Protocol::Ip4(_) | Protocol::Ip6(_)));
    let udp_ok = matches!(parts.next(), Some(Protocol::Udp(_)));
    let quic_ok = matches!(parts.next(), Some(Protocol::QuicV1));
    let rest_ok = match parts.next() {
        None => true,
        Some(Protocol::P2p(_)) => parts.next().is_none(),
        Some(_) => false,
    };
    if !(ip_ok && udp_ok && quic_ok && rest_ok) {
        bail!(
            "{text:?} is not a QUIC address: it must be /ip4/ADDR/udp/PORT/quic-v1 or /ip6/ADDR/udp/PORT/quic-v1 (host names need DNS, which an offline site lacks: use the IP)"
        );
    }
    Ok(addr)
}

/// The admin API's endpoint as the file names it: `"unix"` (the socket in
/// the state directory), `"unix:PATH"` or an absolute path (a socket
/// there), a loopback `IP:PORT`, or `"off"` (`None`).
fn admin_endpoint(text: &str, state_dir: &Path) -> anyhow::Result<Option<Endpoint>> {
    let endpoint = match text {
        "off" => return Ok(None),
        "unix" => Endpoint::Unix(state_dir.join(ADMIN_SOCKET)),
        _ if text.starts_with("unix:") || text.starts_with('/') => text
            .parse()
            .map_err(|error| anyhow::anyhow!("field `admin`: {error}"))?,
        _ => match text.parse::<SocketAddr>() {
            Ok(addr) => Endpoint::Tcp(addr),
            Err(_) => bail!(
                "field `admin`: {text:?} is none of \"unix\" (a socket in the state directory), \"unix:PATH\", an absolute socket path, a loopback IP:PORT, or \"off\""
            ),
        },
    };
    if let Endpoint::Tcp(addr) = endpoint
        && !addr.ip().is_loopback()
    {
        bail!(
            "field `admin`: {addr} is not a loopback address; the admin API listens on 127.0.0.1 or ::1 only (or on a Unix socket, the default)"
        );
    }
    Ok(Some(endpoint))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        format!("{:#}", AgentConfig::parse(text).unwrap_err())
    }

    #[test]
    fn defaults_fill_everything_but_the_state_directory() {
        let config = AgentConfig::parse("state_dir = \"/var/lib/fleetmesh\"").expect("parses");
        assert_eq!(config.listen, vec![address(DEFAULT_LISTEN).unwrap()]);
        assert_eq!(
            config.admin,
            Some(Endpoint::Unix(PathBuf::from(
                "/var/lib/fleetmesh/admin.sock"
            )))
        );
        assert_eq!(config.admin_token_path(), None);
        assert!(config.mdns && config.bootstrap.is_empty() && config.tags.is_none());
        assert_eq!(config.preset, Preset::Lan);
        assert_eq!(config.log_format, LogFormat::Human);
        assert_eq!(config.limits, Limits::default());
        assert_eq!(config.protocol(), fleetmesh_node::Config::lan());
    }

    #[test]
    fn a_full_file_parses() {
        let config = AgentConfig::parse(
            r#"
            state_dir = "state"
            listen = ["127.0.0.1:7000", "/ip6/::1/udp/7000/quic-v1"]
            bootstrap = ["/ip4/10.0.0.1/udp/7946/quic-v1"]
            mdns = false
            tags = { zone = "a", role = "web" }
            preset = "wan"
            admin = "off"
            log_format = "json"
            log_level = "debug"
            [limits]
            tasks_running_max = 4
            "#,
        )
        .expect("parses");
        assert_eq!(
            config.listen[0],
            "/ip4/127.0.0.1/udp/7000/quic-v1"
                .parse::<Multiaddr>()
                .unwrap()
        );
        assert_eq!(config.admin, None);
        assert_eq!(config.preset, Preset::Wan);
        assert_eq!(config.limits.tasks_running_max, 4);
        assert_eq!(config.tags.unwrap()["role"], "web");
    }

    #[test]
    fn the_admin_api_listens_where_the_file_says() {
        let parse = |admin: &str| {
            AgentConfig::parse(&format!("state_dir = \"/s\"\n{admin}")).expect("parses")
        };
        let unix = |path: &str| Some(Endpoint::Unix(PathBuf::from(path)));
        assert_eq!(parse("admin = \"unix\"").admin, unix("/s/admin.sock"));
        assert_eq!(
            parse("admin = \"unix:/run/f.sock\"").admin,
            unix("/run/f.sock")
        );
        assert_eq!(parse("admin = \"/run/g.sock\"").admin, unix("/run/g.sock"));
        assert_eq!(parse("admin = \"off\"").admin, None);
        let tcp = parse("admin = \"[::1]:7947\"");
        assert_eq!(
            tcp.admin,
            Some(Endpoint::Tcp("[::1]:7947".parse().unwrap()))
        );
        assert_eq!(
            tcp.admin_token_path(),
            Some(PathBuf::from("/s/admin.token"))
        );
        let named = parse("admin = \"127.0.0.1:7947\"\nadmin_token_file = \"/etc/t\"");
        assert_eq!(named.admin_token_path(), Some(PathBuf::from("/etc/t")));
    }

    #[test]
    fn relative_paths_are_rebased_without_dots() {
        let cases = [
            ("", ".", "."),
            ("", "./admin.sock", "admin.sock"),
            ("/etc/f", ".", "/etc/f"),
            ("/etc/f", "./s/admin.sock", "/etc/f/s/admin.sock"),
            ("/etc/f", "/run/a.sock", "/run/a.sock"),
            ("conf", "../state", "conf/../state"),
        ];
        for (dir, path, expected) in cases {
            assert_eq!(
                relative_to(Path::new(dir), Path::new(path)),
                PathBuf::from(expected),
                "{dir:?} {path:?}"
            );
        }
    }

    #[test]
    fn relative_paths_are_relative_to_the_config_file() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            "state_dir = \"state\"\nadmin = \"unix:run/a.sock\"\n",
        )
        .expect("write");
        let config = AgentConfig::load(&path).expect("loads");
        assert_eq!(config.state_dir, dir.path().join("state"));
        assert_eq!(
            config.admin,
            Some(Endpoint::Unix(dir.path().join("run/a.sock")))
        );
    }

    #[test]
    fn mistakes_name_their_field() {
        let cases = [
            ("state_dir = \"s\"\nlisten_on = []", "listen_on"),
            ("", "state_dir"),
            ("state_dir = \"s\"\npreset = \"moon\"", "preset"),
            ("state_dir = \"s\"\nmdns = \"yes\"", "mdns"),
            (
                "state_dir = \"s\"\nbootstrap = [\"web-1:7946\"]",
                "bootstrap[0]",
            ),
            (
                "state_dir = \"s\"\nlisten = [\"/ip4/1.2.3.4/tcp/80\"]",
                "listen[0]",
            ),
            ("state_dir = \"s\"\nadmin = \"0.0.0.0:80\"", "loopback"),
            ("state_dir = \"s\"\nadmin = \"admin.sock\"", "unix:PATH"),
            (
                "state_dir = \"s\"\nadmin_token_file = \"t\"",
                "admin_token_file",
            ),
            ("state_dir = \"s\"\ntags = { \"bad key\" = \"x\" }", "tags"),
            (
                "state_dir = \"s\"\n[limits]\nqueue_bytes_max = 10",
                "queue_bytes_max",
            ),
            ("state_dir = \"s\"\n[limits]\nfoo = 1", "foo"),
            ("state_dir = \"s\"\nlog_level = \"[\"", "log_level"),
        ];
        for (text, field) in cases {
            let error = error(text);
            assert!(error.contains(field), "{text:?}: {error:?} lacks {field:?}");
        }
    }

    fn limit_error(limit: &str) -> String {
        error(&format!("state_dir = \"s\"\n[limits]\n{limit}"))
    }

    #[test]
    fn a_limit_out_of_range_is_refused_with_its_range() {
        // 2^32 once passed and was cast to 0 streams: an agent that
        // silently received nothing.
        let message = limit_error("streams_per_connection = 4294967296");
        assert!(
            message.contains("`limits.streams_per_connection`")
                && message.contains("4294967296")
                && message.contains("from 1 to 1024"),
            "{message}"
        );
        for (limit, range) in [
            ("connections_max = 4294967297", "from 1 to 65536"),
            ("connections_max = -1", "from 1 to 65536"),
            ("connections_per_peer = 0", "from 1 to 16"),
            ("tasks_running_max = 1.5", "from 1 to 4096"),
            ("output_bytes_max = \"4k\"", "from 1 to 16777216"),
            ("queue_bytes_max = 10", "from 1048576 to 68719476736"),
            ("unadmitted_connections_max = 0", "from 1 to 4096"),
            (
                "unadmitted_grace_secs = 9223372036854775807",
                "from 1 to 3600",
            ),
            ("verify_per_peer_burst = 0", "from 1 to 1000000"),
        ] {
            let name = limit.split(' ').next().unwrap_or_default();
            let message = limit_error(limit);
            assert!(
                message.contains(&format!("`limits.{name}`")) && message.contains(range),
                "{limit}: {message}"
            );
        }
    }

    #[test]
    fn every_limit_takes_the_ends_of_its_range() {
        for range in Limits::RANGES {
            for value in [range.min, range.max] {
                let text = format!("state_dir = \"s\"\n[limits]\n{} = {value}", range.name);
                let config = AgentConfig::parse(&text)
                    .unwrap_or_else(|error| panic!("{} = {value}: {error:#}", range.name));
                assert_ne!(
                    config.limits,
                    Limits::default(),
                    "{} = {value} changed nothing",
                    range.name
                );
            }
        }
        let config = AgentConfig::parse(
            "state_dir = \"s\"\n[limits]\nverify_per_peer_per_second = 7\nverify_unadmitted_burst = 9",
        )
        .expect("parses");
        let protocol = config.protocol();
        assert_eq!(protocol.verify_per_peer.per_second.get(), 7);
        assert_eq!(protocol.verify_unadmitted.burst.get(), 9);
        assert_eq!(
            Limits::default().verify_per_peer_burst,
            fleetmesh_node::Config::lan().verify_per_peer.burst.get(),
            "one default, in the core"
        );
    }
}
