"""
Packages, for real: build the .deb and the RPM from the built binaries
(packaging/build-deb.sh, build-rpm.sh: what `make deb` / `make rpm` run),
then install the .deb with dpkg on this machine, check the installed
config with the installed `hotpathd -t`, verify the installed unit
offline (`systemd-analyze verify` and `security --offline`), start the
installed binary by hand with the unit's capability bounding set (there is
no systemd as PID 1 here) and drive it with the installed hotpathctl,
purge, and check that nothing of the package is left. The RPM is checked
by its file list, config files, scriptlets and requirements (no RPM
database is touched).

Bounded: each build takes a few seconds; the install/run/purge test holds
a lock so two test runs on one machine do not fight over dpkg, and it
skips (says why) when a `hotpath` package is already installed, so it
never removes someone else's install. Needs root for dpkg -i.
"""
import fcntl
import glob
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import ROOT, OUT

PKG_FILES = {  # what both packages must install, RPM paths (docs uncompressed)
    "/usr/sbin/hotpathd",
    "/usr/bin/hotpathctl",
    "/etc/hotpath/hotpath.ini",
    "/lib/systemd/system/hotpathd.service",
    "/usr/share/man/man1/hotpathctl.1.gz",
    "/usr/share/man/man5/hotpath.ini.5.gz",
    "/usr/share/man/man8/hotpathd.8.gz",
    "/usr/share/doc/hotpath/README.md",
    "/usr/share/doc/hotpath/configuration.md",
    "/usr/share/doc/hotpath/api.md",
    "/usr/share/doc/hotpath/inspect.md",
    "/usr/share/doc/hotpath/operations.md",
}
# lintian tags accepted, each explained in packaging/README.md
LINTIAN_ACCEPTED = set()   # lintian must be clean (overrides explain the rest)
UNIT = "/lib/systemd/system/hotpathd.service"


def run(cmd, timeout=60, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, cwd=ROOT, **kw)


@pytest.fixture(scope="module")
def packages():
    for tool in ("dpkg-deb", "dpkg-shlibdeps", "rpmbuild", "rpm"):
        if not shutil.which(tool):
            pytest.fail("%s is not installed (make deps installs it)" % tool)
    d = tempfile.mkdtemp(prefix="hotpath-pkg-")
    env = dict(os.environ, OUT=OUT, PKGDIR=d)
    t0 = time.time()
    r = run(["packaging/build-deb.sh"], env=env)
    assert r.returncode == 0, r.stderr
    deb_s = time.time() - t0
    r = run(["packaging/build-rpm.sh"], env=env)
    assert r.returncode == 0, r.stderr
    deb = glob.glob(os.path.join(d, "hotpath_*.deb"))
    rpm = glob.glob(os.path.join(d, "hotpath-*.rpm"))
    assert len(deb) == 1 and len(rpm) == 1, os.listdir(d)
    yield {"deb": deb[0], "rpm": rpm[0], "deb_seconds": deb_s}
    shutil.rmtree(d, ignore_errors=True)


def deb_paths(deb):
    out = run(["dpkg-deb", "-c", deb]).stdout
    paths = set()
    for line in out.splitlines():
        p = line.split()[-1]
        if not p.endswith("/"):
            paths.add(p[1:])  # "./usr/..." -> "/usr/..."
    return paths


def test_deb_builds_fast_with_the_right_files(packages):
    assert packages["deb_seconds"] < 30, packages["deb_seconds"]
    paths = deb_paths(packages["deb"])
    norm = {p[:-3] if p.startswith("/usr/share/doc/") and p.endswith(".md.gz") else p
            for p in paths}
    assert PKG_FILES <= norm, PKG_FILES - norm
    assert "/usr/share/doc/hotpath/copyright" in paths
    assert "/usr/share/doc/hotpath/changelog.gz" in paths
    ctrl = run(["dpkg-deb", "-f", packages["deb"], "Package", "Depends"]).stdout
    assert "Package: hotpath" in ctrl
    assert "libbpf1" in ctrl and "libmicrohttpd12" in ctrl, ctrl
    # the proxy's content codings: zlib, brotli and zstd at run time
    assert "zlib1g" in ctrl and "libbrotli1" in ctrl and "libzstd1" in ctrl, ctrl
    conff = run(["dpkg-deb", "--ctrl-tarfile", packages["deb"]])
    assert conff.returncode == 0
    d = tempfile.mkdtemp(prefix="hotpath-ctrl-")
    try:
        assert run(["dpkg-deb", "-e", packages["deb"], d]).returncode == 0
        with open(os.path.join(d, "conffiles")) as f:
            assert f.read().split() == ["/etc/hotpath/hotpath.ini"]
        for s in ("postinst", "prerm", "postrm"):
            assert os.access(os.path.join(d, s), os.X_OK), s
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_deb_lintian(packages):
    if not shutil.which("lintian"):
        pytest.fail("lintian is not installed (make deps installs it)")
    r = run(["lintian", "--pedantic", "--display-info", "--no-tag-display-limit",
             packages["deb"]], timeout=120)
    tags = []
    for line in r.stdout.splitlines():
        m = re.match(r"^([EWIPX]): hotpath[^:]*: (\S+)", line)
        if m:
            tags.append((m.group(1), m.group(2), line))
    bad = [t[2] for t in tags if t[0] in "EW" or t[1] not in LINTIAN_ACCEPTED]
    assert not bad, "lintian:\n" + "\n".join(bad)


def test_rpm_files_scripts_requires(packages):
    rpm = packages["rpm"]
    files = set(run(["rpm", "-qpl", rpm]).stdout.split())
    assert PKG_FILES <= files, PKG_FILES - files
    # the same files as the .deb, less Debian's own (copyright, changelog,
    # lintian override) and the .gz of long docs
    deb = {p[:-3] if p.startswith("/usr/share/doc/") and p.endswith(".md.gz") else p
           for p in deb_paths(packages["deb"])}
    deb -= {"/usr/share/doc/hotpath/copyright", "/usr/share/doc/hotpath/changelog.gz",
            "/usr/share/lintian/overrides/hotpath"}
    assert deb == files - {"/etc/hotpath", "/usr/share/doc/hotpath"}, deb ^ files
    assert run(["rpm", "-qpc", rpm]).stdout.split() == ["/etc/hotpath/hotpath.ini"]
    scripts = run(["rpm", "-qp", "--scripts", rpm]).stdout
    assert "postinstall scriptlet" in scripts and "preuninstall scriptlet" in scripts
    assert "systemctl --no-reload preset hotpathd.service" in scripts
    assert "disable --now hotpathd.service" in scripts
    assert "try-restart hotpathd.service" in scripts
    assert "/run/systemd/system" in scripts  # nothing happens without systemd
    req = run(["rpm", "-qpR", rpm]).stdout
    assert "libbpf.so.1()(64bit)" in req and "libjansson.so.4()(64bit)" in req, req
    assert "libbrotlienc.so.1()(64bit)" in req and "libzstd.so.1()(64bit)" in req, req


def unit_caps():
    with open(os.path.join(ROOT, "systemd", "hotpathd.service")) as f:
        for line in f:
            if line.startswith("CapabilityBoundingSet="):
                return line.split("=", 1)[1].split()
    raise AssertionError("no CapabilityBoundingSet= in the unit")


def cap_names(mask):
    out = run(["capsh", "--decode=%x" % mask]).stdout.strip()
    return set(out.split("=", 1)[1].split(",")) if "=" in out else set()


def proc_caps(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1], 16)
    return 0


def test_deb_install_run_purge(packages):
    if os.geteuid() != 0:
        pytest.skip("installing a .deb needs root (dpkg -i)")
    lock = open("/tmp/hotpath-packaging-test.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        st = run(["dpkg-query", "-W", "-f=${Status}", "hotpath"])
        if "installed" in st.stdout and "not-installed" not in st.stdout:
            pytest.skip("a hotpath package is already installed here; not touching it")
        r = run(["dpkg", "-i", packages["deb"]], timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        try:
            installed = run(["dpkg-query", "-L", "hotpath"]).stdout.split()
            for p in PKG_FILES:
                assert os.path.exists(p) or os.path.exists(p + ".gz"), p
            check_installed()
        finally:
            r = run(["dpkg", "--purge", "hotpath"], timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        left = [p for p in installed if os.path.exists(p) and not os.path.isdir(p)]
        assert not left, left
        for p in ("/etc/hotpath", "/usr/share/doc/hotpath",
                  "/etc/systemd/system/multi-user.target.wants/hotpathd.service",
                  "/var/lib/systemd/deb-systemd-helper-enabled/hotpathd.service.dsh-also",
                  "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/"
                  "hotpathd.service"):
            assert not os.path.lexists(p), p + " left after purge"
        st = run(["dpkg-query", "-W", "-f=${Status}", "hotpath"])
        assert "installed" not in st.stdout.replace("not-installed", ""), st.stdout
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def check_installed():
    # enabled by postinst (the symlink systemd would follow at boot)
    link = "/etc/systemd/system/multi-user.target.wants/hotpathd.service"
    assert os.path.islink(link) and os.readlink(link) == UNIT
    # the installed binary accepts the installed config
    r = run(["/usr/sbin/hotpathd", "-t", "-c", "/etc/hotpath/hotpath.ini"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "test is successful" in r.stdout
    # the installed unit verifies clean (its binary and man pages now exist)
    r = run(["systemd-analyze", "verify", UNIT])
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    r = run(["systemd-analyze", "security", "--offline=true", UNIT])
    m = re.search(r"Overall exposure level for hotpathd.service: ([0-9.]+)", r.stdout)
    assert m, r.stdout[-500:] + r.stderr
    assert float(m.group(1)) <= 3.0, m.group(0)
    # the man pages render without groff warnings
    for page in ("hotpathd", "hotpathctl", "hotpath.ini"):
        r = run(["man", "--warnings", "-E", "UTF-8", "-Tutf8", "-Z", page],
                env=dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8"))
        assert r.returncode == 0 and not r.stderr.strip(), (page, r.stderr)
    start_installed_by_hand()


def start_installed_by_hand():
    """The installed binary, by hand, inside the unit's capability set."""
    d = tempfile.mkdtemp(prefix="hotpath-pkgrun-")
    pin = "/sys/fs/bpf/hotpath-pkgtest-%d-%s" % (os.getpid(), secrets.token_hex(3))
    proc = None
    try:
        tok = run(["/usr/bin/hotpathctl", "token", "new", "ops", "*"])
        assert tok.returncode == 0, tok.stderr
        token = tok.stdout.split("token: ", 1)[1].split()[0]
        line = tok.stdout.strip().splitlines()[-1]
        tokens = os.path.join(d, "tokens")
        with open(tokens, "w") as f:
            f.write(line + "\n")
        os.chmod(tokens, 0o600)
        # the installed file, with test ports, tokens and pin path on top
        with open("/etc/hotpath/hotpath.ini") as f:
            ini = f.read()
        ini = re.sub(r"(?m)^listen = 127\.0\.0\.1:\d+$", "listen = 127.0.0.1:0", ini)
        ini = re.sub(r"(?m)^tokens_file =.*$", "tokens_file = " + tokens, ini)
        ini = re.sub(r"(?m)^pin_path =.*$", "pin_path = " + pin, ini)
        cfg = os.path.join(d, "hotpath.ini")
        with open(cfg, "w") as f:
            f.write(ini)
        caps = unit_caps()
        bset = ",".join("+" + c.lower()[4:] for c in caps)
        log = open(os.path.join(d, "log"), "w+")
        proc = subprocess.Popen(["setpriv", "--bounding-set=-all," + bset, "--inh-caps=-all",
                                 "--no-new-privs", "/usr/sbin/hotpathd", "-c", cfg],
                                stdout=log, stderr=subprocess.STDOUT, cwd="/")
        api = None
        end = time.time() + 15
        while time.time() < end and api is None and proc.poll() is None:
            time.sleep(0.1)
            log.seek(0)
            m = re.search(r"ready: RESP on port \d+, API on port (\d+)", log.read())
            api = m and int(m.group(1))
        log.seek(0)
        text = log.read()
        assert api, "installed hotpathd did not become ready:\n" + text
        # it runs with at most the unit's capabilities (this machine may lack some)
        have = cap_names(proc_caps(proc.pid, "CapEff"))
        assert have <= {c.lower() for c in caps}, have
        assert "cap_sys_admin" not in have
        # ... and the kernel side still works there, or says why not in one line
        r = run(["/usr/bin/hotpathctl", "--url", "http://127.0.0.1:%d" % api, "--json",
                 "status"], env=dict(os.environ, HOTPATH_TOKEN=token))
        assert r.returncode == 0, r.stderr
        import json
        feats = {f["name"]: f for f in json.loads(r.stdout)["health"]["features"]}
        for name in ("bpf", "bpffs", "perf_event"):
            assert name in feats
            if not feats[name]["available"]:
                assert feats[name].get("reason"), feats[name]
        if feats["bpf"]["available"] and feats["bpffs"]["available"]:
            assert os.path.exists(os.path.join(pin, "accept_stats")), os.listdir(pin)
        proc.terminate()
        assert proc.wait(30) == 0, text
        proc = None
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        if os.path.isdir(pin):
            for p in os.listdir(pin):
                os.unlink(os.path.join(pin, p))
            os.rmdir(pin)
        shutil.rmtree(d, ignore_errors=True)
