//! A real etcd (Debian's `etcd-server`) on loopback: one member or a
//! cluster of three, each member on a loopback address of its own.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{ChildGuard, unique_loopback, wait_until};

/// The etcd binary, if installed (`.ci/run` installs `etcd-server`).
pub fn etcd_binary() -> Option<PathBuf> {
    ["/usr/bin/etcd", "/usr/local/bin/etcd"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

struct Member {
    name: String,
    address: Ipv4Addr,
    data_dir: PathBuf,
    process: Option<ChildGuard>,
}

/// Certificates for an etcd that serves clients over TLS and asks them for
/// a certificate, made with the `openssl` command line.
#[derive(Debug, Clone)]
pub struct EtcdTls {
    /// The CA that signed both certificates.
    pub ca: PathBuf,
    /// etcd's certificate (valid for the members' addresses).
    pub server_cert: PathBuf,
    /// Its key.
    pub server_key: PathBuf,
    /// A client certificate.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
}

impl EtcdTls {
    /// Makes a CA, a server certificate for `addresses` and a client
    /// certificate in `dir`; `None` (with a message) without `openssl`.
    fn generate(dir: &Path, addresses: &[Ipv4Addr]) -> Option<Self> {
        let openssl = |args: &[&str]| {
            Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .map(|output| {
                    assert!(
                        output.status.success(),
                        "openssl {args:?}: {}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                })
        };
        let new_key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let ca = [
            &["req", "-x509"][..],
            &new_key,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=geocdn test CA",
            ],
        ]
        .concat();
        if openssl(&ca).is_err() {
            crate::requirements::missing("openssl is not installed", "apt-get install openssl");
            return None;
        }
        let sans: Vec<String> = addresses.iter().map(|ip| format!("IP:{ip}")).collect();
        std::fs::write(
            dir.join("server.ext"),
            format!(
                "subjectAltName={}\nextendedKeyUsage=serverAuth\n",
                sans.join(",")
            ),
        )
        .ok()?;
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").ok()?;
        for (name, subject) in [("server", "/CN=etcd"), ("client", "/CN=geocdn")] {
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let pem = format!("{name}.pem");
            let ext = format!("{name}.ext");
            openssl(
                &[
                    &["req"][..],
                    &new_key,
                    &["-keyout", &key, "-out", &csr, "-subj", subject],
                ]
                .concat(),
            )
            .ok()?;
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ])
            .ok()?;
        }
        Some(Self {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        })
    }
}

/// A running etcd cluster; stopped when dropped.
pub struct Etcd {
    members: Vec<Member>,
    initial_cluster: String,
    binary: PathBuf,
    tls: Option<EtcdTls>,
    dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts `size` members and waits for them to elect a leader; `None`
    /// (with a message) when etcd is not installed.
    pub fn start(size: usize) -> Option<Self> {
        Self::start_with(size, false)
    }

    /// Like [`Etcd::start`], serving clients over TLS with client
    /// certificates required when `tls` is set.
    pub fn start_with(size: usize, tls: bool) -> Option<Self> {
        let Some(binary) = etcd_binary() else {
            crate::requirements::missing("etcd is not installed", "apt-get install etcd-server");
            return None;
        };
        let dir = tempfile::tempdir().expect("temporary directory");
        let members: Vec<Member> = (0..size)
            .map(|index| {
                let name = format!("m{index}");
                Member {
                    data_dir: dir.path().join(&name),
                    name,
                    address: unique_loopback(),
                    process: None,
                }
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|member| format!("{}=http://{}:2380", member.name, member.address))
            .collect::<Vec<_>>()
            .join(",");
        let tls = if tls {
            let addresses: Vec<Ipv4Addr> = members.iter().map(|member| member.address).collect();
            Some(EtcdTls::generate(dir.path(), &addresses)?)
        } else {
            None
        };
        let mut etcd = Self {
            members,
            initial_cluster,
            binary,
            tls,
            dir,
        };
        for index in 0..size {
            etcd.spawn(index);
        }
        for index in 0..size {
            etcd.wait_healthy(index);
        }
        Some(etcd)
    }

    fn spawn(&mut self, index: usize) {
        let member = &self.members[index];
        let client = self.endpoint(index);
        let peer = format!("http://{}:2380", member.address);
        let state = if member.data_dir.exists() {
            "existing"
        } else {
            "new"
        };
        let mut command = Command::new(&self.binary);
        if let Some(tls) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&tls.server_cert)
                .arg("--key-file")
                .arg(&tls.server_key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg("--client-cert-auth");
        }
        let process = ChildGuard::spawn(
            &format!("etcd {}", member.name),
            command
                .arg("--name")
                .arg(&member.name)
                .arg("--data-dir")
                .arg(&member.data_dir)
                .arg("--listen-client-urls")
                .arg(&client)
                .arg("--advertise-client-urls")
                .arg(&client)
                .arg("--listen-peer-urls")
                .arg(&peer)
                .arg("--initial-advertise-peer-urls")
                .arg(&peer)
                .arg("--initial-cluster")
                .arg(&self.initial_cluster)
                .arg("--initial-cluster-state")
                .arg(state)
                .arg("--initial-cluster-token")
                .arg("geocdn-test")
                .arg("--heartbeat-interval")
                .arg("50")
                .arg("--election-timeout")
                .arg("500")
                .arg("--logger")
                .arg("zap")
                .arg("--log-level")
                .arg("warn"),
            &self.dir.path().join(format!("{}.log", member.name)),
        )
        .expect("etcd starts");
        self.members[index].process = Some(process);
    }

    fn wait_healthy(&self, index: usize) {
        let address = self.members[index].address;
        let healthy = wait_until(Duration::from_secs(20), || match &self.tls {
            // The peer port answers once the member runs; TLS clients wait for the leader.
            Some(_) => std::net::TcpStream::connect((address, 2379)).is_ok(),
            None => crate::http::get(std::net::SocketAddr::from((address, 2379)), "/health")
                .is_ok_and(|response| response.body.contains("\"health\":\"true\"")),
        });
        assert!(
            healthy,
            "etcd member {index} not healthy; log: {}",
            self.log(index)
        );
    }

    /// Client URLs of every member (stopped ones included, as an operator
    /// would configure them).
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len())
            .map(|index| self.endpoint(index))
            .collect()
    }

    /// The certificates, when serving TLS.
    pub fn tls(&self) -> Option<&EtcdTls> {
        self.tls.as_ref()
    }

    /// The endpoints as a TOML array.
    pub fn endpoints_toml(&self) -> String {
        toml_array(&self.endpoints())
    }

    /// The client URL of member `index`.
    pub fn endpoint(&self, index: usize) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}:2379", self.members[index].address)
    }

    /// Stops member `index` (SIGTERM, then waits).
    pub fn stop(&mut self, index: usize) {
        if let Some(mut process) = self.members[index].process.take() {
            process.signal("TERM");
            assert!(
                process.wait_timeout(Duration::from_secs(10)).is_some(),
                "etcd member {index} did not stop"
            );
        }
    }

    /// Starts member `index` again from its data.
    pub fn restart(&mut self, index: usize) {
        self.spawn(index);
        self.wait_healthy(index);
    }

    /// The log of member `index`.
    pub fn log(&self, index: usize) -> String {
        std::fs::read_to_string(log_path(self.dir.path(), &self.members[index].name))
            .unwrap_or_default()
    }
}

/// `urls` as a TOML array of strings.
pub fn toml_array(urls: &[String]) -> String {
    let quoted: Vec<String> = urls.iter().map(|url| format!("\"{url}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.log"))
}
