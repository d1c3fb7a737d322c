//! A small network of Linux network namespaces for partition tests: one
//! namespace per host, each with a veth `eth0` into a switch namespace
//! that holds two bridges, side A and side B, joined by one veth pair (the
//! trunk). Taking the trunk down cuts the network in two and leaves each
//! side whole; bringing it up heals it. Only iproute2 is needed, no
//! firewall tools.
//!
//! Names carry the test process's pid (`fmt-PID-SEQ-…`), so parallel runs
//! never collide; everything is deleted on drop, also when a test panics,
//! and namespaces left by a run that was killed (its pid gone) are removed
//! by the next one.

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use fleetmesh_runtime::local::Placement;

/// The port every agent listens on, each at its own namespace's address.
const AGENT_PORT: u16 = 7946;
/// Prefix of every namespace these tests make.
const PREFIX: &str = "fmt-";
/// Set (to anything) where the namespace tests must run, as in CI: a
/// missing privilege is then a failure instead of a skip.
pub const REQUIRED_VAR: &str = "FLEETMESH_NETNS_REQUIRED";
/// Most hosts of one network: one /24.
const HOSTS_MAX: usize = 250;

/// Networks made by this process, for unique names.
static NETWORKS: AtomicUsize = AtomicUsize::new(0);

/// The namespaces, deleted on drop.
pub struct Network {
    /// The switch's namespace: the bridges and the trunk.
    switch: String,
    /// Each host's namespace, in order.
    hosts: Vec<String>,
    /// Hosts `..side_a` are on side A, the rest on side B.
    side_a: usize,
}

impl Drop for Network {
    fn drop(&mut self) {
        for name in self.hosts.iter().chain([&self.switch]) {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

impl Network {
    /// `hosts` namespaces, hosts `..side_a` on side A and the others on
    /// side B, connected. `Err` says why this machine cannot build it (not
    /// root, no `ip`, namespaces not permitted), for the caller to skip.
    pub fn create(hosts: usize, side_a: usize) -> Result<Network, String> {
        assert!(hosts <= HOSTS_MAX && side_a <= hosts);
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not running as root (network namespaces need CAP_SYS_ADMIN)".into());
        }
        remove_stale();
        let base = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NETWORKS.fetch_add(1, Ordering::Relaxed)
        );
        let mut network = Network {
            switch: format!("{base}-sw"),
            hosts: Vec::new(),
            side_a,
        };
        // A leftover of a run that had this pid before.
        let _ = ip(&["netns", "del", &network.switch]);
        ip(&["netns", "add", &network.switch])?;
        let sw = network.switch.clone();
        for command in [
            "link add bra type bridge",
            "link add brb type bridge",
            "link add trunka type veth peer name trunkb",
            "link set trunka master bra",
            "link set trunkb master brb",
            "link set bra up",
            "link set brb up",
            "link set trunka up",
            "link set trunkb up",
        ] {
            ip_in(&sw, command)?;
        }
        for index in 0..hosts {
            let host = format!("{base}-{index}");
            let _ = ip(&["netns", "del", &host]);
            ip(&["netns", "add", &host])?;
            network.hosts.push(host.clone());
            let port = format!("p{index}");
            let bridge = if index < side_a { "bra" } else { "brb" };
            ip(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &host,
            ])?;
            ip_in(&sw, &format!("link set {port} master {bridge}"))?;
            ip_in(&sw, &format!("link set {port} up"))?;
            ip_in(&host, &format!("addr add {}/24 dev eth0", address(index)))?;
            ip_in(&host, "link set eth0 up")?;
            ip_in(&host, "link set lo up")?;
        }
        Ok(network)
    }

    /// Where each host's agent runs: in its namespace (`ip netns exec`),
    /// listening on the namespace's address. Its admin API is the Unix
    /// socket in its directory: the file system is shared, so this process
    /// reaches it without entering the namespace.
    pub fn places(&self) -> Vec<Placement> {
        self.hosts
            .iter()
            .enumerate()
            .map(|(index, name)| Placement {
                listen: SocketAddr::from((address(index), AGENT_PORT)),
                admin_tcp: None,
                prefix: ["ip", "netns", "exec", name].map(str::to_owned).to_vec(),
            })
            .collect()
    }

    /// Hosts on side A, then those on side B.
    pub fn sides(&self) -> (Vec<usize>, Vec<usize>) {
        (
            (0..self.side_a).collect(),
            (self.side_a..self.hosts.len()).collect(),
        )
    }

    /// Cuts the trunk: side A and side B no longer reach each other.
    pub fn cut(&self) {
        ip_in(&self.switch, "link set trunka down").expect("cut the trunk");
    }

    /// Heals the cut.
    pub fn heal(&self) {
        ip_in(&self.switch, "link set trunka up").expect("heal the trunk");
    }
}

/// Host `index`'s address.
fn address(index: usize) -> Ipv4Addr {
    let last = u8::try_from(index + 1).expect("at most HOSTS_MAX hosts");
    Ipv4Addr::new(10, 77, 0, last)
}

/// Builds a network or says why not: `None` means skip, after printing why;
/// where [`REQUIRED_VAR`] is set, it panics instead.
pub fn network_or_skip(test: &str, hosts: usize, side_a: usize) -> Option<Network> {
    match Network::create(hosts, side_a) {
        Ok(network) => Some(network),
        Err(reason) if std::env::var_os(REQUIRED_VAR).is_some() => {
            panic!("{test}: {REQUIRED_VAR} is set but network namespaces are unavailable: {reason}")
        }
        Err(reason) => {
            // Straight to standard error: the test harness would capture
            // `eprintln!` of a passing test, and a skip must be seen.
            let _ = writeln!(
                io::stderr(),
                "SKIPPED {test}: network namespaces are unavailable here: {reason}"
            );
            None
        }
    }
}

/// Deletes namespaces of earlier runs whose process is gone (killed
/// before their drop could run).
fn remove_stale() {
    let Ok(listing) = ip(&["netns", "list"]) else {
        return;
    };
    for line in listing.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// `ip -n NAMESPACE` with `command`'s words.
fn ip_in(namespace: &str, command: &str) -> Result<String, String> {
    let mut args = vec!["-n", namespace];
    args.extend(command.split_whitespace());
    ip(&args)
}

/// Runs `ip ARGS`; `Err` with what failed.
fn ip(args: &[&str]) -> Result<String, String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|error| format!("cannot run `ip` (is iproute2 installed?): {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
