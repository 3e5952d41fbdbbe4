"""
A real PostgreSQL 15 for tests, started in a temporary directory on a free
loopback port: initdb and pg_ctl run as the `postgres` system user (the
server refuses to run as root). Local (Unix socket) connections trust the
OS user; TCP connections need a SCRAM-SHA-256 password, so a pooler in
front of it really authenticates.

    pg = PgServer().start()
    pg.sql("CREATE ROLE app LOGIN PASSWORD 'secret'")
    ...
    pg.restart(); pg.stop()

Independent of any other fixture; other test files may import it, and
start_pooler() for a hotpathd pooling in front of it.
"""
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

PGBIN = "/usr/lib/postgresql/15/bin"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd, **kw):
    return subprocess.run(["runuser", "-u", "postgres", "--"] + cmd, **kw)


class PgServer:
    def __init__(self, port=None, settings=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="hotpath-pg-")
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        self.log = os.path.join(self.dir, "pg.log")
        self.settings = settings or {}
        pw = pwd.getpwnam("postgres")
        os.chmod(self.dir, 0o755)
        os.makedirs(self.sock)
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chown(self.sock, pw.pw_uid, pw.pw_gid)

    def start(self):
        if not os.path.isdir(self.data):
            r = _as_postgres([os.path.join(PGBIN, "initdb"), "-D", self.data, "-U", "postgres",
                              "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                              "--locale=C"], capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError("initdb failed: " + r.stderr)
            conf = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                    "max_connections": "200", "shared_buffers": "64MB"}
            conf.update(self.settings)
            with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
                for k, v in conf.items():
                    f.write("%s = %s\n" % (k, v))
        opts = "-p %d -k %s -c listen_addresses=127.0.0.1" % (self.port, self.sock)
        r = _as_postgres([os.path.join(PGBIN, "pg_ctl"), "-D", self.data, "-o", opts, "-l",
                          self.log, "-w", "-t", "30", "start"], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("pg_ctl start failed: %s\n%s" % (r.stderr, self.log_text()))
        return self

    def stop(self, mode="fast"):
        _as_postgres([os.path.join(PGBIN, "pg_ctl"), "-D", self.data, "-m", mode, "-w",
                      "stop"], capture_output=True)

    def restart(self, mode="fast"):
        self.stop(mode)
        self.start()

    def cleanup(self):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    def sql(self, query, db="postgres"):
        """Run SQL as the superuser over the Unix socket; returns stdout."""
        r = _as_postgres([os.path.join(PGBIN, "psql"), "-X", "-q", "-A", "-t", "-h", self.sock,
                          "-p", str(self.port), "-U", "postgres", "-d", db, "-v",
                          "ON_ERROR_STOP=1", "-c", query], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("psql failed: %s" % r.stderr)
        return r.stdout.strip()

    def scram_secret(self, role):
        return self.sql("SELECT rolpassword FROM pg_authid WHERE rolname = '%s'" % role)


def pooler_ini(pg, port, users=None, auth_type="scram-sha-256", mode="transaction", size=4,
               extra=""):
    """hotpathd's [pooler] on `port` in front of `pg`'s database app (login
    app/secret); `extra` is more INI text."""
    lines = ["[pooler]", "listen = 127.0.0.1:%d" % port, "auth_type = %s" % auth_type]
    if users:
        lines.append("auth_file = %s" % users)
    lines += ["pool_mode = %s" % mode, "default_pool_size = %d" % size, extra,
              "[database.app]", "host = 127.0.0.1", "port = %d" % pg.port, "dbname = app",
              "user = app", "password = secret", ""]
    return "\n".join(lines)


def start_pooler(hotpath_factory, pg, users=None, **kw):
    """A hotpathd (BPF off) pooling `pg` (pooler_ini's arguments), once it
    listens; its port is .pool_port."""
    port = free_port()
    dm = hotpath_factory(ini_extra=pooler_ini(pg, port, users, **kw), bpf=False)
    dm.pool_port = port
    dm.users = users
    assert dm.wait_log("pooler: listening"), dm.log_text()
    return dm
