//! Behaviour tests that run on every backend from one source.
//!
//! `backend_tests! { fn name(backend) -> TestResult { ... } }` makes a module `name` with a
//! test per backend: `name::redb` (in memory) and `name::postgres`. A test opens its
//! databases with [`Backend::open`] or [`Backend::open_with`]; on PostgreSQL each gets a
//! schema of its own, dropped when the [`TestKv`] drops, so tests run in parallel and leave
//! nothing behind.
//!
//! The PostgreSQL server: `VALKEYRIE_TEST_POSTGRES_URL` if set; else a throwaway cluster
//! this test binary starts from the installed PostgreSQL binaries (stopped and deleted when
//! the binary exits); else the PostgreSQL tests print that they were skipped and pass,
//! except under `CI=true`, where a skip fails.

use std::ops::Deref;

use valkeyrie::{Kv, KvBuilder};

/// Where a test's databases live.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    /// redb, in memory.
    Redb,
    /// A PostgreSQL server, by URL.
    Postgres(&'static str),
}

/// An open test database; derefs to its [`Kv`].
pub struct TestKv {
    kv: Kv,
    /// PostgreSQL: the server and the schema to drop.
    schema: Option<(&'static str, String)>,
}

impl Deref for TestKv {
    type Target = Kv;
    fn deref(&self) -> &Kv {
        &self.kv
    }
}

impl std::fmt::Debug for TestKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.kv.fmt(f)
    }
}

impl Drop for TestKv {
    fn drop(&mut self) {
        let _ = self.kv.close();
        if let Some((url, schema)) = self.schema.take() {
            drop_schema(url, &schema);
        }
    }
}

impl Backend {
    /// The PostgreSQL backend, or `None` (after printing why) when no server is available.
    pub fn postgres(test: &str) -> Option<Backend> {
        match server::url() {
            Some(url) => Some(Backend::Postgres(url)),
            None => {
                let why = server::why_none();
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "{test}: PostgreSQL test skipped in CI ({why})"
                );
                eprintln!("{test}: skipped on PostgreSQL ({why})");
                None
            }
        }
    }

    /// A new, empty database with default options.
    pub fn open(self) -> valkeyrie::Result<TestKv> {
        self.open_with(|b| b)
    }

    /// A new, empty database with `configure` applied to the default builder.
    pub fn open_with(
        self,
        configure: impl FnOnce(KvBuilder) -> KvBuilder,
    ) -> valkeyrie::Result<TestKv> {
        let builder = configure(Kv::builder());
        match self {
            Backend::Redb => Ok(TestKv {
                kv: builder.open_in_memory()?,
                schema: None,
            }),
            Backend::Postgres(url) => open_postgres(builder, url),
        }
    }

    /// Whether this is PostgreSQL (for the few differences a test states).
    pub fn is_postgres(self) -> bool {
        matches!(self, Backend::Postgres(_))
    }
}

#[cfg(feature = "postgres")]
fn open_postgres(builder: KvBuilder, url: &'static str) -> valkeyrie::Result<TestKv> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let schema = format!(
        "t_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let kv = builder.postgres_schema(schema.clone()).open_postgres(url);
    match kv {
        Ok(kv) => Ok(TestKv {
            kv,
            schema: Some((url, schema)),
        }),
        Err(e) => {
            drop_schema(url, &schema);
            Err(e)
        }
    }
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(_: KvBuilder, _: &'static str) -> valkeyrie::Result<TestKv> {
    unreachable!("no PostgreSQL server without the `postgres` feature")
}

fn drop_schema(url: &str, schema: &str) {
    if let Ok(mut client) = postgres::Client::connect(url, postgres::NoTls) {
        let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
    }
}

/// A second handle on the same database as `db` (PostgreSQL only; `None` on redb in
/// memory, which has no second handle).
#[cfg(feature = "postgres")]
pub fn second_handle(db: &TestKv) -> valkeyrie::Result<Option<Kv>> {
    match &db.schema {
        Some((url, schema)) => Kv::builder()
            .postgres_schema(schema.clone())
            .open_postgres(url)
            .map(Some),
        None => Ok(None),
    }
}

/// Makes `mod name { fn redb(); fn postgres(); }` from one test body taking a [`Backend`].
#[macro_export]
macro_rules! backend_tests {
    ($( $(#[$meta:meta])* fn $name:ident($backend:ident) -> $ret:ty $body:block )*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                use $crate::common::backend::Backend;

                fn run($backend: Backend) -> $ret $body

                #[test]
                fn redb() -> $ret {
                    run(Backend::Redb)
                }

                #[test]
                fn postgres() -> $ret {
                    match Backend::postgres(concat!(module_path!(), "::postgres")) {
                        Some(backend) => run(backend),
                        None => Ok(()),
                    }
                }
            }
        )*
    };
}

/// The PostgreSQL server the tests use.
mod server {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::sync::OnceLock;

    static SERVER: OnceLock<Result<&'static str, String>> = OnceLock::new();

    pub fn url() -> Option<&'static str> {
        get().as_ref().ok().copied()
    }

    pub fn why_none() -> String {
        match get() {
            Ok(_) => String::new(),
            Err(why) => why.clone(),
        }
    }

    fn get() -> &'static Result<&'static str, String> {
        SERVER.get_or_init(|| {
            if !cfg!(feature = "postgres") {
                return Err("built without the `postgres` feature".into());
            }
            if let Ok(url) = std::env::var("VALKEYRIE_TEST_POSTGRES_URL") {
                return Ok(Box::leak(url.into_boxed_str()));
            }
            start_cluster().map(|url| &*Box::leak(url.into_boxed_str()))
        })
    }

    /// PostgreSQL's server binaries: `pg_config --bindir`, or Debian's layout.
    fn bindir() -> Option<PathBuf> {
        let from_config = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        let debian = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|dirs| {
                let mut found: Vec<PathBuf> =
                    dirs.flatten().map(|d| d.path().join("bin")).collect();
                found.sort();
                found.pop()
            });
        [from_config, debian]
            .into_iter()
            .flatten()
            .find(|dir| dir.join("initdb").exists() && dir.join("postgres").exists())
    }

    /// Starts a cluster in a temporary directory, on a free loopback port, owned by the
    /// `postgres` user when running as root (the server refuses root). A watcher process
    /// stops it and deletes the directory when this test binary exits.
    fn start_cluster() -> Result<String, String> {
        let bin = bindir().ok_or(
            "VALKEYRIE_TEST_POSTGRES_URL is unset and no PostgreSQL server binaries are installed",
        )?;
        let dir = std::env::temp_dir().join(format!("valkeyrie-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {dir:?}: {e}"))?;
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let as_owner = |program: &Path| {
            let mut cmd = if root {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            } else {
                Command::new(program)
            };
            cmd.stdin(Stdio::null());
            cmd
        };
        if root {
            let chown = Command::new("chown").arg("postgres").arg(&dir).status();
            if !chown.is_ok_and(|s| s.success()) {
                return Err("running as root and cannot hand the cluster to user postgres".into());
            }
        }
        let data = dir.join("data");
        let init = as_owner(&bin.join("initdb"))
            .args(["-A", "trust", "-U", "kv", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !init.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&init.stderr)
            ));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("find a free port: {e}"))?
            .port();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c max_connections=300",
            dir.display()
        );
        let start = as_owner(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-o", &options, "-w", "start"])
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if !start.success() {
            return Err(format!(
                "pg_ctl start failed; see {}",
                dir.join("log").display()
            ));
        }
        // Stops the cluster once this process is gone.
        let watcher = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {runuser}{pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            runuser = if root { "runuser -u postgres -- " } else { "" },
            pg_ctl = bin.join("pg_ctl").display(),
            data = data.display(),
            dir = dir.display(),
        );
        Command::new("sh")
            .args(["-c", &watcher])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start the cluster's watcher: {e}"))?;
        Ok(format!("postgres://kv@127.0.0.1:{port}/postgres"))
    }
}

impl Backend {
    /// A new database on a [`ManualClock`](valkeyrie::ManualClock) reading 1,000,000 ms,
    /// with the background sweeper off (as `mem_db_with_clock`).
    pub fn open_with_clock(self) -> valkeyrie::Result<(TestKv, valkeyrie::ManualClock)> {
        let clock = valkeyrie::ManualClock::new(1_000_000);
        let db = self.open_with(|b| b.clock(clock.clone()).sweep_interval(None))?;
        Ok((db, clock))
    }
}
