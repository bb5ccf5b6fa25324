# SPDX-License-Identifier: GPL-2.0
"""Real servers and clients for the application tests, from the Debian
packages that tools/setup.sh installs: each server runs in the foreground
in a network namespace with a configuration of its own under a directory
in /tmp (never the machine's /etc), as a user would start it by hand.

The guest's namespaces share one file system, so a test can hand a server
a file (or a named pipe) and read what a client wrote."""

import hashlib
import os
import shutil
import subprocess

from vnattest import (Capture, check, check_eq, listening_ports, log, sh, wait_for, wait_keyed, wait_mapped,
                      ynl_connection_rows)


def workdir(name):
    d = f"/tmp/vnat-{name}"
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


class Server:
    """A daemon started in the foreground in namespace `ns`; waits until it
    listens on TCP `port`."""

    def __init__(self, ns, argv, port, name):
        self.name = name
        self.log = f"/tmp/vnat-{name}-{ns}.log"
        log(f"{ns}: {' '.join(argv)}")
        self.p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL,
                                  stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        if not wait_for(lambda: port in listening_ports(ns) or self.p.poll() is not None,
                        f"{name} listens on {port}", timeout=30) or self.p.poll() is not None:
            raise RuntimeError(f"{name} did not start: {open(self.log).read()}")

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()

    def output(self):
        return open(self.log).read()


USER, UID = "vnat", 4242


def add_user():
    """A user of our own for the sessions, as people log in (not as root,
    whose dot files belong to the machine that built the guest): added to
    copies of /etc/passwd, /etc/group and /etc/shadow (no password: it logs
    in by key) mounted over the guest's (the machine's own files are not
    touched). Returns its home."""
    d = workdir("user")
    home = f"{d}/home"
    os.makedirs(home)
    os.chown(home, UID, UID)
    for name, line in (("passwd", f"{USER}:x:{UID}:{UID}:VNAT test:{home}:/bin/sh\n"),
                       ("group", f"{USER}:x:{UID}:\n"), ("shadow", f"{USER}:*:20000:0:99999:7:::\n")):
        with open(f"/etc/{name}") as f:
            text = [l for l in f if not l.startswith(f"{USER}:")]
        with open(f"{d}/{name}", "w") as f:
            f.writelines(text + [line])
        st = os.stat(f"/etc/{name}")
        os.chmod(f"{d}/{name}", st.st_mode & 0o777)
        os.chown(f"{d}/{name}", st.st_uid, st.st_gid)
        sh(f"mount --bind {d}/{name} /etc/{name}")
    return home


def remove_user():
    for name in ("passwd", "group", "shadow"):
        sh(f"umount /etc/{name}", check_rc=False)


# A command for an ssh session: prints a numbered line every 100 ms until
# its standard input closes, then "end".
TICKER = ("import select, sys, time\n"
          "i = 0\n"
          "while not select.select([sys.stdin], [], [], 0.1)[0]:\n"
          "    print('line', i, flush=True); i += 1\n"
          "print('end', flush=True)\n")


class Sshd:
    """OpenSSH's sshd in `ns` on port 22 with Debian's PAM stack; the user
    `vnat` logs in by key. The client side (ssh) has the key and a
    known_hosts of its own. `config`: more lines of sshd_config."""

    def __init__(self, ns, config=""):
        self.dir = d = workdir("ssh")
        self.home = add_user()
        # The guest's init leaves pam_nologin's "System is booting up" file.
        sh("rm -f /run/nologin")
        sh(f"ssh-keygen -q -t ed25519 -N '' -f {d}/host_key")
        sh(f"ssh-keygen -q -t ed25519 -N '' -f {d}/user_key")
        shutil.copy(f"{d}/user_key.pub", f"{d}/authorized_keys")
        os.makedirs("/run/sshd", exist_ok=True)   # sshd's privilege separation directory
        with open(f"{d}/sshd_config", "w") as f:
            f.write(f"""Port 22
HostKey {d}/host_key
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM yes
StrictModes no
UseDNS no
Subsystem sftp /usr/lib/openssh/sftp-server
{config}""")
        self.server = Server(ns, ["/usr/sbin/sshd", "-D", "-e", "-f", f"{d}/sshd_config"], 22, "sshd")

    def argv(self, host, *command):
        """ssh to vnat@`host` running `command` (a shell command line)."""
        return ["ssh", "-F", "/dev/null", "-i", f"{self.dir}/user_key", "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={self.dir}/known_hosts", "-o", "StrictHostKeyChecking=accept-new",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", f"{USER}@{host}", *command]

    def stop(self):
        self.server.stop()
        remove_user()


def popen(ns, argv, **kw):
    """A client in namespace `ns` (its output to pipes unless given)."""
    log(f"{ns}: {' '.join(argv)}")
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kw)


def finished(p, what, timeout=120, read_stdout=True):
    """Closes the standard input of client `p` and waits for it; checks
    that it exited 0 and said nothing on standard error. Returns its
    standard output (unless a thread of the test reads it)."""
    if p.stdin:
        p.stdin.close()
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        check(False, f"{what}: still running after {timeout} s")
    out = p.stdout.read() if read_stdout else None
    err = p.stderr.read()
    err = err.decode(errors="replace").strip() if isinstance(err, bytes) else err.strip()
    check(p.returncode == 0 and not err, f"{what}: exit status {p.returncode}, standard error {err!r}")
    return out


class Nginx:
    """nginx in `ns` on port 80 serving the directory `root`, each response
    sent at most `rate` (nginx's limit_rate, e.g. "256k") per second."""

    def __init__(self, ns, root, rate):
        self.dir = d = workdir("nginx")
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(f"""daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 80;
        root {root};
        limit_rate {rate};
    }}
}}
""")
        self.server = Server(ns, ["nginx", "-e", f"{d}/error.log", "-p", d, "-c", f"{d}/nginx.conf"], 80, "nginx")

    def stop(self):
        self.server.stop()


class Vsftpd:
    """vsftpd in `ns` on port 21: anonymous, read-only, serving `root`, each
    transfer at most `rate` bytes per second, passive data ports 30000 to
    30009. The anonymous user is the package's `ftp` (its home, where
    vsftpd goes before it changes root to `root`, is /srv/ftp)."""

    def __init__(self, ns, root, rate):
        self.dir = d = workdir("vsftpd")
        os.makedirs(f"{d}/empty")
        with open(f"{d}/vsftpd.conf", "w") as f:
            f.write(f"""listen=YES
listen_ipv6=NO
background=NO
anonymous_enable=YES
local_enable=NO
write_enable=NO
no_anon_password=YES
anon_root={root}
ftp_username=ftp
anon_max_rate={rate}
secure_chroot_dir={d}/empty
pasv_min_port=30000
pasv_max_port=30009
seccomp_sandbox=NO
xferlog_enable=NO
vsftpd_log_file={d}/vsftpd.log
""")
        self.server = Server(ns, ["/usr/sbin/vsftpd", f"{d}/vsftpd.conf"], 21, "vsftpd")

    def stop(self):
        self.server.stop()


def file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def download_across_move(topo, url, blob, to, what, flags=(), records=1, capture="tcp"):
    """curl, in the topology's client, downloads `url`, whose content is
    `blob`, while the client moves: once the server has its `records`
    connections, keyed, and curl a quarter of the file, the client moves to
    subnet `to`. Checks that part of the file was still to come when the
    server had mapped the new address (the move was during the download),
    that curl exits 0 with nothing on standard error, the SHA-256, and that
    the router sees (`capture`: its filter) the new address and, after the
    move settled, neither the old one nor a reset."""
    got = f"{workdir('curl-' + what)}/download"
    old = topo.client_addr()
    curl = popen("cli", ["curl", "-sS", *flags, "-o", got, url])
    wait_for(lambda: len(ynl_connection_rows("srv")) == records, f"{what}: the server records curl's connections", 30)
    wait_keyed("cli", "srv", timeout=30)
    wait_for(lambda: file_size(got) >= len(blob) // 4, f"{what}: curl has a quarter of the file", 60)
    log(f"{what}: curl has {file_size(got) >> 10} KiB: the client moves")
    topo.attach_client(to)
    new = topo.client_addr()
    wait_mapped("srv", new)
    left = len(blob) - file_size(got)
    check(left > 0, f"{what}: part of the file was still to come after the move ({left} bytes)")
    cap = Capture("rtr", capture)
    finished(curl, f"{what}: curl", timeout=120)
    cap.stop()
    with open(got, "rb") as f:
        check_eq(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(blob).hexdigest(), f"{what}: SHA-256")
    check(cap.count(f"host {new}") > 0, f"{what}: router saw {new}")
    check_eq(cap.count(f"host {old}"), 0, f"{what}: router packets of {old} after the move settled")
    check_eq(cap.count("tcp[tcpflags] & tcp-rst != 0"), 0, f"{what}: resets on the wire")
