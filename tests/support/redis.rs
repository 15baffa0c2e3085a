//! A real Redis server for a test (Debian's `redis-server`), on a free
//! port; killed when dropped.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Child,
    pub port: u16,
    /// Where it keeps its append-only file, if it keeps one.
    persistence: Option<tempfile::TempDir>,
}

impl RedisServer {
    /// A Redis that keeps nothing on disk.
    pub fn start() -> RedisServer {
        RedisServer::spawn(None)
    }

    /// A Redis that writes every change to an append-only file, so that
    /// what it acknowledged survives a kill and a restart.
    pub fn start_persistent() -> RedisServer {
        RedisServer::spawn(Some(tempfile::tempdir().expect("a directory")))
    }

    fn spawn(persistence: Option<tempfile::TempDir>) -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = RedisServer::command(port, persistence.as_ref())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot start redis-server ({err}): apt-get install redis-server")
            });
        let server = RedisServer {
            child,
            port,
            persistence,
        };
        server.wait_until_up();
        server
    }

    fn command(port: u16, persistence: Option<&tempfile::TempDir>) -> Command {
        let mut command = Command::new("redis-server");
        command.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]);
        match persistence {
            Some(dir) => {
                command
                    .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                    .arg(dir.path());
            }
            None => {
                command.args(["--appendonly", "no"]);
            }
        }
        command.stdout(Stdio::null()).stderr(Stdio::null());
        command
    }

    fn wait_until_up(&self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A connection to it, for the test's own commands.
    fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|client| client.get_connection())
            .expect("a connection to Redis")
    }

    /// A figure of `INFO memory`, in bytes (`used_memory`,
    /// `used_memory_peak`, ...).
    pub fn memory(&self, figure: &str) -> u64 {
        let mut connection = self.connection();
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query(&mut connection)
            .expect("INFO memory");
        info.lines()
            .find_map(|line| line.strip_prefix(&format!("{figure}:")))
            .and_then(|bytes| bytes.trim().parse().ok())
            .expect("the figure")
    }

    /// How many of its clients are named `name` (`CLIENT SETNAME`).
    pub fn clients_named(&self, name: &str) -> usize {
        let mut connection = self.connection();
        let clients: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query(&mut connection)
            .expect("CLIENT LIST");
        let named = format!(" name={name} ");
        clients.lines().filter(|line| line.contains(&named)).count()
    }

    /// Wait until `hosts` hosts follow topics through this Redis (each
    /// has its reading connection), for up to 20 s.
    pub async fn followed_by(&self, hosts: usize) {
        super::until(
            async || self.clients_named("squall-pubsub-reader") >= hosts,
            || format!("fewer than {hosts} hosts follow topics"),
        )
        .await;
    }

    /// Stop it (as a crash would).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start it again on the same port (with what it kept, if it keeps).
    pub fn restart(&mut self) {
        self.kill();
        self.child = RedisServer::command(self.port, self.persistence.as_ref())
            .spawn()
            .expect("redis-server restarts");
        self.wait_until_up();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
