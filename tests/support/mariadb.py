"""A throwaway MariaDB server for tests that need real SQL behaviour.

Error codes, collations, authentication failures and dropped connections are exactly what
a mock gets wrong, so handler tests run against a private server: its own data directory
in a temp dir, a free loopback port, TLS with a CA made on the spot, and an application
user whose password is generated at run time. Nothing is installed here; a missing server
binary is a hard error.
"""

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pymysql
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pymysql.constants import ER

INSTALL_HINT = "apt-get install -y mariadb-server"
# Debian installs mariadbd in /usr/sbin, which a non-root PATH often lacks.
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])


class MariaDBNotInstalled(RuntimeError):
    pass


@dataclass
class MariaDBServer:
    base_dir: Path
    port: int
    socket_path: Path
    process: subprocess.Popen
    database: str
    user: str
    password: str = field(repr=False)
    host: str = "127.0.0.1"

    @property
    def ca_file(self) -> Path:
        """CA that signed the server certificate (issued for the name localhost only)."""
        return self.base_dir / "ca.pem"

    def admin_connection(self, **kwargs) -> pymysql.Connection:
        """Connect as root over the private socket (no password, so it is never exposed).

        TLS is off: it adds nothing on a local socket and costs ~25 ms per connection.
        """
        return pymysql.connect(
            unix_socket=str(self.socket_path), user="root", autocommit=True, ssl_disabled=True, **kwargs
        )

    def set_password(self, password: str) -> None:
        """Change the application user's password, as a secret rotation would."""
        with self.admin_connection() as conn, conn.cursor() as cur:
            cur.execute(f"ALTER USER '{self.user}'@'%%' IDENTIFIED BY %s", (password,))
        self.password = password

    def kill_connections(self, user: str) -> int:
        """Drop every session of `user`, as a failover or idle timeout would. Returns how many."""
        with self.admin_connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT id FROM information_schema.processlist WHERE user = %s", (user,))
            killed = 0
            for (session_id,) in cur.fetchall():
                try:
                    cur.execute("KILL CONNECTION %s", (session_id,))
                    killed += 1
                except pymysql.err.OperationalError as exc:
                    if exc.args[0] != ER.NO_SUCH_THREAD:  # it ended on its own meanwhile
                        raise
        return killed

    def log_tail(self, lines: int = 30) -> str:
        log = self.base_dir / "error.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.base_dir, ignore_errors=True)


def find_binary(name: str) -> str:
    path = shutil.which(name, path=_SEARCH_PATH)
    if path is None:
        raise MariaDBNotInstalled(
            f"'{name}' not found: the handler tests need a local MariaDB server. Install it with: {INSTALL_HINT}"
        )
    return path


def start_mariadb(database: str = "erp", user: str = "app", timeout: float = 30.0) -> MariaDBServer:
    """Initialise and start a private server, then create `database` and `user` on it."""
    install_db, mariadbd = find_binary("mariadb-install-db"), find_binary("mariadbd")
    base_dir = Path(tempfile.mkdtemp(prefix="mariadb-test-"))
    data_dir, tmp_dir = base_dir / "data", base_dir / "tmp"
    # A private tmpdir: MariaDB names its temporary tables after its pid, so two servers that
    # share /tmp across pid namespaces (CI sandbox beside a developer's run) delete each other's.
    tmp_dir.mkdir()
    try:
        subprocess.run(
            [
                install_db,
                "--no-defaults",  # ignore /etc/mysql: the system server's settings are not ours
                f"--datadir={data_dir}",
                f"--tmpdir={tmp_dir}",
                "--user=root",
                "--skip-test-db",
                # root@localhost gets no password: reachable only through the socket in our temp dir.
                "--auth-root-authentication-method=normal",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(base_dir, ignore_errors=True)
        raise RuntimeError(f"mariadb-install-db failed:\n{exc.stdout}\n{exc.stderr}") from None

    _write_certificates(base_dir)
    port = _free_port()
    process = subprocess.Popen(
        [
            mariadbd,
            "--no-defaults",
            f"--datadir={data_dir}",
            f"--tmpdir={tmp_dir}",
            f"--socket={base_dir / 'mysqld.sock'}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--user=root",
            "--skip-name-resolve",
            f"--pid-file={base_dir / 'mysqld.pid'}",
            f"--log-error={base_dir / 'error.log'}",
            f"--ssl-ca={base_dir / 'ca.pem'}",
            f"--ssl-cert={base_dir / 'server.pem'}",
            f"--ssl-key={base_dir / 'server-key.pem'}",
            # Durability is pointless for a throwaway server; these make start-up and DDL quick.
            "--innodb-flush-log-at-trx-commit=0",
            "--innodb-doublewrite=0",
            "--innodb-buffer-pool-size=32M",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = MariaDBServer(
        base_dir=base_dir,
        port=port,
        socket_path=base_dir / "mysqld.sock",
        process=process,
        database=database,
        user=user,
        password=secrets.token_urlsafe(24),
    )
    try:
        _wait_until_ready(server, timeout)
        with server.admin_connection() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            cur.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (server.password,))
            cur.execute(f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'%'")
    except BaseException:
        server.stop()
        raise
    return server


def _write_certificates(directory: Path) -> None:
    """A CA and a server certificate for 127.0.0.1, so that TLS, verified or not, can be tested."""
    now = datetime.now(UTC)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Throwaway test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            # "localhost" only: connecting to 127.0.0.1 with hostname checks on must fail (wrong name).
            x509.SubjectAlternativeName([x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (directory / "server.pem").write_bytes(server_cert.public_bytes(pem))
    (directory / "server-key.pem").write_bytes(
        server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_ready(server: MariaDBServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"mariadbd exited with code {server.process.returncode} during start-up:\n{server.log_tail()}"
            )
        try:
            server.admin_connection(connect_timeout=2).close()
            return
        except pymysql.err.OperationalError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"mariadbd did not accept connections within {timeout:.0f}s:\n{server.log_tail()}"
                ) from None
            time.sleep(0.05)
