//! `geocdn-demo`: a complete CDN on loopback.
//!
//! Starts the sample origin (in this process), three edges (`eu`, `us`,
//! `ap` on 127.0.0.11-13, HTTP on 8080 and HTTPS on 8443 with a local CA
//! made for the run, see [`tls`]) and geodns on 127.0.0.1:5353 with a database
//! built from `deploy/demo/networks.csv`, prints a walkthrough, and stops
//! everything on Ctrl-C. The configurations are the files beside this
//! program's source, embedded at build time and written to `target/demo/`.
//!
//! `geocdn-demo --cluster` adds an etcd (127.0.0.20:2379, needs the
//! `etcd-server` package) that geodns and the edges follow, and two edges
//! that no configuration lists (`eu-2`, `eu-3` on 127.0.0.14-15): they
//! announce themselves, join the answers, and fill from each other.

mod origin;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

const GEODNS_CONFIG: &str = include_str!("../geodns.toml");
const NETWORKS: &str = include_str!("../networks.csv");
const EDGES: [(&str, &str, &str); 3] = [
    ("eu", "127.0.0.11", include_str!("../edge-eu.toml")),
    ("us", "127.0.0.12", include_str!("../edge-us.toml")),
    ("ap", "127.0.0.13", include_str!("../edge-ap.toml")),
];
const ORIGIN: &str = "127.0.0.10:8000";
const CLUSTER_SECTION: &str = include_str!("../cluster/cluster.toml");
const ANNOUNCED_EDGES: [(&str, &str, &str); 2] = [
    (
        "eu-2",
        "127.0.0.14",
        include_str!("../cluster/edge-eu-2.toml"),
    ),
    (
        "eu-3",
        "127.0.0.15",
        include_str!("../cluster/edge-eu-3.toml"),
    ),
];
const ETCD: &str = "127.0.0.20";

/// A complete CDN on loopback: an origin, three edges and geodns, with a
/// walkthrough to paste. Ctrl-C stops everything.
#[derive(Debug, clap::Parser)]
#[command(name = "geocdn-demo", version, about, long_about = None)]
struct Cli {
    /// Add an etcd (127.0.0.20:2379, apt etcd-server) and two edges that
    /// announce themselves through it instead of being configured.
    #[arg(long)]
    cluster: bool,
    #[command(subcommand)]
    command: Option<Only>,
}

#[derive(Debug, clap::Subcommand)]
enum Only {
    /// Serve only the sample origin (the namespace lab uses it).
    Origin {
        /// Address to listen on.
        address: SocketAddr,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = <Cli as clap::Parser>::parse();
    if let Some(Only::Origin { address }) = cli.command {
        origin::serve(address).await?;
        println!("origin serving on http://{address}");
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        return Ok(());
    }
    let cluster = cli.cluster;
    let binaries = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .context("cannot find the directory of this program")?;
    let work = binaries
        .parent()
        .map_or_else(|| binaries.join("demo"), |target| target.join("demo"));
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    for name in ["geodns", "edge"] {
        if !binaries.join(name).is_file() {
            anyhow::bail!(
                "{} is missing: run deploy/demo/run.sh (it builds every binary first)",
                binaries.join(name).display()
            );
        }
    }

    std::fs::write(work.join("networks.csv"), NETWORKS)?;
    geoip::build_from_csv(&work.join("networks.csv"), &work.join("demo.mmdb"))?;
    let with_cluster = |config: &str| {
        if cluster {
            format!("{config}\n{CLUSTER_SECTION}")
        } else {
            config.to_string()
        }
    };
    let mut geodns_config = with_cluster(GEODNS_CONFIG);
    if cluster {
        geodns_config.push_str("state_file = \"membership.json\"\n");
    }
    std::fs::write(work.join("geodns.toml"), geodns_config)?;

    origin::serve(ORIGIN.parse()?).await?;
    let mut children: Vec<(String, Child)> = Vec::new();
    if cluster {
        children.push(("etcd".into(), start_etcd(&work)?));
        wait_for(format!("{ETCD}:2379").parse()?, &mut children, &work).await?;
    }
    let announced: &[(&str, &str, &str)] = if cluster { &ANNOUNCED_EDGES } else { &[] };
    let addresses: Vec<&str> = EDGES
        .iter()
        .chain(announced)
        .map(|(_, address, _)| *address)
        .collect();
    tls::make_certificates(&work.join("tls"), &addresses)?;
    let edge_configs = EDGES
        .iter()
        .map(|(name, address, config)| (*name, with_cluster(config) + &tls::edge_section(address)))
        .chain(announced.iter().map(|(name, address, config)| {
            (*name, (*config).to_string() + &tls::edge_section(address))
        }));
    for (name, config) in edge_configs {
        let path = work.join(format!("edge-{name}.toml"));
        std::fs::write(&path, config)?;
        children.push((
            format!("edge {name}"),
            spawn(
                &binaries.join("edge"),
                &path,
                &work.join(format!("edge-{name}.log")),
            )?,
        ));
    }
    children.push((
        "geodns".into(),
        spawn(
            &binaries.join("geodns"),
            &work.join("geodns.toml"),
            &work.join("geodns.log"),
        )?,
    ));

    let mut waits: Vec<SocketAddr> = EDGES
        .iter()
        .chain(announced)
        .map(|(_, address, _)| format!("{address}:8080").parse())
        .collect::<Result<_, _>>()?;
    waits.push("127.0.0.1:5353".parse()?);
    for address in waits {
        wait_for(address, &mut children, &work).await?;
    }
    print_walkthrough(&children, &work);
    if cluster {
        print_cluster_walkthrough(&children, &work);
    }

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => println!("\nstopping..."),
        _ = terminate.recv() => println!("\nstopping..."),
        exited = first_exit(&mut children) => println!("\n{exited} exited unexpectedly; stopping (logs in {})", work.display()),
    }
    for (_, child) in &mut children {
        let _ = child.start_kill();
    }
    for (_, child) in &mut children {
        let _ = child.wait().await;
    }
    println!("stopped everything.");
    Ok(())
}

/// A one-member etcd on 127.0.0.20 with fresh data in `work/etcd`.
fn start_etcd(work: &Path) -> anyhow::Result<Child> {
    let binary = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("etcd"))
        .find(|path| path.is_file())
        .context("the cluster demo needs etcd: apt-get install etcd-server")?;
    let data = work.join("etcd");
    if data.exists() {
        std::fs::remove_dir_all(&data).with_context(|| format!("remove {}", data.display()))?;
    }
    let client = format!("http://{ETCD}:2379");
    let peer = format!("http://{ETCD}:2380");
    let log = std::fs::File::create(work.join("etcd.log"))?;
    Command::new(&binary)
        .args(["--name", "demo", "--data-dir"])
        .arg(&data)
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("demo={peer}")])
        .args(["--logger", "zap", "--log-level", "warn"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))
}

fn spawn(binary: &Path, config: &Path, log: &Path) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log)?;
    Command::new(binary)
        .arg("run")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))
}

async fn wait_for(
    address: SocketAddr,
    children: &mut [(String, Child)],
    work: &Path,
) -> anyhow::Result<()> {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            return Ok(());
        }
        for (name, child) in children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                anyhow::bail!(
                    "{name} exited ({status}) during start; see the logs in {}",
                    work.display()
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!(
        "nothing listens on {address} after 10 s; see the logs in {}",
        work.display()
    )
}

async fn first_exit(children: &mut [(String, Child)]) -> String {
    loop {
        for (name, child) in children.iter_mut() {
            if let Ok(Some(_)) = child.try_wait() {
                return name.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The process id of child `wanted`, for the walkthrough.
fn pid_of(children: &[(String, Child)], wanted: &str) -> String {
    children
        .iter()
        .find(|(name, _)| name == wanted)
        .and_then(|(_, child)| child.id())
        .map_or_else(|| "?".to_string(), |pid| pid.to_string())
}

/// Where `run.sh` built geodns, for commands to paste.
fn geodns_path(work: &Path) -> PathBuf {
    work.parent().map_or_else(
        || PathBuf::from("geodns"),
        |target| target.join("release/geodns"),
    )
}

fn print_walkthrough(children: &[(String, Child)], work: &Path) {
    let pid = |wanted: &str| pid_of(children, wanted);
    let geodns = geodns_path(work);
    println!(
        r#"
GeoCDN demo is running:
  origin    http://{ORIGIN}
  edges     eu 127.0.0.11:8080 (pid {eu}), us 127.0.0.12:8080 (pid {us}), ap 127.0.0.13:8080 (pid {ap}); HTTPS on :8443
  geodns    127.0.0.1:5353 (DNS), http://127.0.0.1:9153 (admin)
  configs   deploy/demo/*.toml (copies and logs in {work})

Try it (paste into another terminal):

  # Clients in three regions, told apart by EDNS Client Subnet:
  dig @127.0.0.1 -p 5353 www.cdn.example.com +short +subnet=192.0.2.0/24      # Amsterdam -> 127.0.0.11 (eu)
  dig @127.0.0.1 -p 5353 www.cdn.example.com +short +subnet=198.51.100.0/24   # New York  -> 127.0.0.12 (us)
  dig @127.0.0.1 -p 5353 www.cdn.example.com +subnet=203.0.113.0/24 | grep -E 'SUBNET|IN.A'   # Tokyo -> ap, with the ECS scope

  # Through an edge: MISS, then HIT with Age:
  curl -si http://127.0.0.11:8080/hello.txt -H 'Host: www.cdn.example.com' | grep -iE '^(x-cache|age)'
  sleep 1; curl -si http://127.0.0.11:8080/hello.txt -H 'Host: www.cdn.example.com' | grep -iE '^(x-cache|age)'

  # Over HTTPS (HTTP/2), with the CA this run made:
  curl -si --cacert {work}/tls/ca.pem --resolve www.cdn.example.com:8443:127.0.0.11 https://www.cdn.example.com:8443/hello.txt | grep -iE '^(HTTP|x-cache)'

  # Why a client gets its edge:
  {geodns} explain --config {work}/geodns.toml 192.0.2.10

  # Stop the eu edge: within about a second Amsterdam is sent to the next nearest (us):
  kill -STOP {eu}; sleep 2
  dig @127.0.0.1 -p 5353 www.cdn.example.com +short +subnet=192.0.2.0/24
  kill -CONT {eu}      # and it comes back after two good checks

  # State and metrics:
  curl -s http://127.0.0.1:9153/status | head -40
  curl -s http://127.0.0.11:9180/healthz

Ctrl-C stops everything."#,
        eu = pid("edge eu"),
        us = pid("edge us"),
        ap = pid("edge ap"),
        work = work.display(),
        geodns = geodns.display(),
    );
}

fn print_cluster_walkthrough(children: &[(String, Child)], work: &Path) {
    let pid = |wanted: &str| pid_of(children, wanted);
    let geodns = geodns_path(work);
    let ctl = format!("{} ctl --endpoints http://{ETCD}:2379", geodns.display());
    println!(
        r#"
Cluster mode: etcd on http://{ETCD}:2379 (pid {etcd}); eu-2 (127.0.0.14, Amsterdam,
pid {eu2}) and eu-3 (127.0.0.15, Paris, pid {eu3}) are in no configuration file:
they announce themselves.

  # Who announced itself, and Amsterdam now sent to eu-2 (give it a second or two):
  {ctl} members
  dig @127.0.0.1 -p 5353 www.cdn.example.com +short +subnet=192.0.2.0/24      # -> 127.0.0.14

  # Drain eu-2 on every geodns, then put it back:
  {ctl} drain eu-2 --reason demo
  dig @127.0.0.1 -p 5353 www.cdn.example.com +short +subnet=192.0.2.0/24      # -> 127.0.0.11
  {ctl} pool eu-2

  # Regional fill: eu-2 and eu-3 share one origin fetch per object (Via shows the hop):
  curl -si http://127.0.0.14:8080/fill.txt -H 'Host: www.cdn.example.com' | grep -iE '^(x-cache|via)'
  curl -si http://127.0.0.15:8080/fill.txt -H 'Host: www.cdn.example.com' | grep -iE '^(x-cache|via)'

  # A purge sent to one edge reaches all five:
  curl -s -X POST -H 'Authorization: Bearer demo-token' 'http://127.0.0.11:9180/purge?url=/fill.txt&host=www.cdn.example.com'

  # Freeze eu-2: out of the answers within a second (health checks), out of the
  # membership when its 10 s lease expires; thawed, it announces itself again:
  kill -STOP {eu2}; sleep 2
  dig @127.0.0.1 -p 5353 www.cdn.example.com +short +subnet=192.0.2.0/24      # -> 127.0.0.11
  sleep 10; {ctl} members                     # eu-2 is gone: its lease expired
  kill -CONT {eu2}; sleep 2; {ctl} members    # and back: it announced itself again"#,
        etcd = pid("etcd"),
        eu2 = pid("edge eu-2"),
        eu3 = pid("edge eu-3"),
    );
}
